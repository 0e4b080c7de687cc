-- Alerts for negative moments of truth (extended by the alerts issue).
CREATE TABLE alerts (
    alert_id text PRIMARY KEY,
    feedback_id text NOT NULL UNIQUE,
    severity integer NOT NULL CHECK (severity BETWEEN -3 AND -1),
    status text NOT NULL,
    raised_at timestamptz NOT NULL
);
