-- Events waiting to be published, written in the same transaction as the
-- state change they describe; the relay publishes them in id order.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    key bytea,
    headers jsonb NOT NULL,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
