-- One row per feedback: what intake received (feedback.received.v1) and how
-- alerts scored it (feedback.scored.v1). The two events arrive on different
-- topics in either order, so each fills its own columns of the same row.
CREATE TABLE feedback_facts (
    feedback_id text PRIMARY KEY,
    channel text NOT NULL,
    location text,
    touchpoint text,
    rating_scale text,
    rating_value integer,
    occurred_at timestamptz,
    received_at timestamptz NOT NULL,
    -- When the moment happened: occurred_at when the channel knows it, else received_at.
    at timestamptz GENERATED ALWAYS AS (coalesce(occurred_at, received_at)) STORED,
    received boolean NOT NULL DEFAULT false,
    mot smallint CHECK (mot BETWEEN -3 AND 3),
    negative boolean,
    scored_at timestamptz
);
CREATE INDEX feedback_facts_at_idx ON feedback_facts (at);
