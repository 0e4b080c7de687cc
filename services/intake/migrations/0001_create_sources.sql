-- Placeholder owned by intake; the API-key tables arrive with the intake issue.
CREATE TABLE IF NOT EXISTS intake_info (
    key text PRIMARY KEY,
    value text NOT NULL
);
