-- One row per feedback event (idempotent by event id).
CREATE TABLE feedback_facts (
    feedback_id text PRIMARY KEY,
    channel text NOT NULL,
    location text,
    touchpoint text,
    rating_scale text,
    rating_value integer,
    occurred_at timestamptz,
    received_at timestamptz NOT NULL
);
CREATE INDEX feedback_facts_received_at_idx ON feedback_facts (received_at);
