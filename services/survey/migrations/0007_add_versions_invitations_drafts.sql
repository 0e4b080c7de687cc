-- Issue 15: survey versions, invitations for any survey with contact rules, partial answers,
-- scoped API tokens.

-- Versions: editing a survey stores a new version under the same id. `surveys.definition` stays
-- the current version's copy (what the pages read); every version is kept in survey_versions.
CREATE TABLE survey_versions (
    survey_id text NOT NULL REFERENCES surveys (survey_id),
    version integer NOT NULL CHECK (version >= 1),
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (survey_id, version),
    CHECK (definition ->> 'id' = survey_id)
);
INSERT INTO survey_versions (survey_id, version, definition, created_at)
SELECT survey_id, 1, definition, created_at FROM surveys;
ALTER TABLE surveys ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE surveys ALTER COLUMN version DROP DEFAULT;

-- Every response records the version it answered (those before versions existed answered version 1).
ALTER TABLE survey_responses ADD COLUMN survey_version integer NOT NULL DEFAULT 1;
ALTER TABLE survey_responses ALTER COLUMN survey_version DROP DEFAULT;

-- survey_requests is the record of every invitation (an API call, a bulk row, a trigger, or alerts'
-- survey.requested.v1), queued or skipped by the contact rules, and of its funnel:
--   status: queued (its mail is in mail_queue, perhaps deferred to send_at) | skipped (skip_reason)
--   contact_keys: pseudonyms (shared.privacy) of the customer's id, email and phone: the contact
--                 rules count a customer's queued invitations by any of them; no contact in clear.
--   *_at: the funnel steps, each set once (and published once as survey.invitation.v1).
ALTER TABLE survey_requests
    ADD COLUMN status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'skipped')),
    ADD COLUMN skip_reason text CHECK (skip_reason IN ('unsubscribed', 'suppressed', 'no_address', 'frequency',
                                                       'min_interval', 'quiet_hours')),
    ADD COLUMN client_key text,
    ADD COLUMN request_hash text,
    ADD COLUMN requested_by text,
    ADD COLUMN context jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN time_zone text,
    ADD COLUMN survey_version integer,
    ADD COLUMN contact_keys text[] NOT NULL DEFAULT '{}',
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN send_at timestamptz,
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN opened_at timestamptz,
    ADD COLUMN started_at timestamptz,
    ADD COLUMN completed_at timestamptz,
    ADD COLUMN unsubscribed_at timestamptz;
-- Requests recorded before: queued when they had a mail, else skipped for want of an address. Their
-- contact keys are unknown (SQL holds no pseudonym key): they do not count towards frequency rules.
UPDATE survey_requests
SET decided_at = created_at,
    status = CASE WHEN mail_id IS NULL AND request_id NOT IN (SELECT request_id FROM survey_invitation_backlog)
                  THEN 'skipped' ELSE 'queued' END,
    skip_reason = CASE WHEN mail_id IS NULL AND request_id NOT IN (SELECT request_id FROM survey_invitation_backlog)
                       THEN 'no_address' END,
    completed_at = (SELECT submitted_at FROM survey_responses r WHERE r.request_id = survey_requests.request_id);
ALTER TABLE survey_requests
    ALTER COLUMN decided_at SET NOT NULL,
    ADD CONSTRAINT survey_requests_skip_reason CHECK ((status = 'skipped') = (skip_reason IS NOT NULL));
CREATE UNIQUE INDEX survey_requests_client_key ON survey_requests (survey_id, client_key) WHERE client_key IS NOT NULL;
CREATE INDEX survey_requests_contacts ON survey_requests USING gin (contact_keys) WHERE status = 'queued';
CREATE INDEX survey_requests_decided ON survey_requests (decided_at);

-- Partial answers, kept while a page is left and reopened: per personal link (r:<request id>) or, for
-- a public survey, per browser (s:<survey id>:<submission id>, the id in its cookie).
CREATE TABLE survey_drafts (
    draft_key text PRIMARY KEY,
    survey_id text NOT NULL REFERENCES surveys (survey_id),
    survey_version integer NOT NULL,
    request_id text REFERENCES survey_requests (request_id),
    answers jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX survey_drafts_updated ON survey_drafts (updated_at);

-- Scoped API tokens (shared.auth SignedTokens, purpose survey-api-token): the token is signed and
-- expires by itself; this row lets it be listed and revoked.
CREATE TABLE api_tokens (
    token_id text PRIMARY KEY,
    subject text NOT NULL,
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
