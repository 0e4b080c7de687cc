-- Ids of the events a consumer has applied, so a redelivered event has no
-- second effect (at-least-once delivery, exactly-once effect).
CREATE TABLE processed_events (
    event_id text PRIMARY KEY,
    topic text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
