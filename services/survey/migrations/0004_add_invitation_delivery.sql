-- Which survey a request asks, where the experience happened, and the state
-- of its invitation email, so a restart never sends it twice:
--   pending -> sending (claimed by a sender) -> sent | pending (retry) | failed
--   unsendable: the customer has no email address.
ALTER TABLE survey_requests
    ADD COLUMN survey_id text NOT NULL DEFAULT 'recovery' REFERENCES surveys (survey_id),
    ADD COLUMN location text,
    ADD COLUMN touchpoint text,
    ADD COLUMN delivery_status text NOT NULL DEFAULT 'pending'
        CHECK (delivery_status IN ('pending', 'sending', 'sent', 'failed', 'unsendable')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN sent_at timestamptz,
    ADD COLUMN message_id text,
    ADD COLUMN last_error text;
ALTER TABLE survey_requests ALTER COLUMN survey_id DROP DEFAULT;

CREATE INDEX survey_requests_due ON survey_requests (next_attempt_at) WHERE delivery_status = 'pending';
CREATE INDEX survey_requests_sending ON survey_requests (claimed_at) WHERE delivery_status = 'sending';
