-- Deliberately NOT idempotent by itself: a duplicate effect shows up as a second row.
CREATE TABLE effects (
    event_id text NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
