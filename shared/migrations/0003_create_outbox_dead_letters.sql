-- Outbox rows that can never be published (Kafka refuses the message for good: too large, an invalid
-- topic; or the row cannot be read back as a message), moved here by the relay with the error so that
-- the rows behind them go out. `keymoment dlq outbox` lists them and puts them back (`replay`).
CREATE TABLE outbox_dead_letters (
    id bigint PRIMARY KEY,  -- the outbox row's id
    topic text NOT NULL,
    key bytea,
    headers jsonb NOT NULL,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL,  -- permanent | unexpected
    error text NOT NULL
);
