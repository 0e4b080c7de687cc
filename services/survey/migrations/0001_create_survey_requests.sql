-- Surveys asked of customers (recovery surveys after an alert was resolved).
CREATE TABLE survey_requests (
    request_id text PRIMARY KEY,
    kind text NOT NULL,
    alert_id text,
    customer jsonb NOT NULL,
    language text,
    requested_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
