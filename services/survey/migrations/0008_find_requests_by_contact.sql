-- Erasure (issue 14): an erasure finds a customer's requests by their contact keys (the pseudonyms
-- of id, email and phone), whatever the request's status, so they get an index of their own.
-- Requests recorded before migration 0007 have none ('{}': SQL holds no pseudonym key): they are
-- marked, and survey fills them in at start from `customer` (services.survey.privacy.pseudonymise_backlog).
ALTER TABLE survey_requests ADD COLUMN contact_keys_pending boolean NOT NULL DEFAULT false;
UPDATE survey_requests SET contact_keys_pending = true WHERE contact_keys = '{}' AND customer <> '{}'::jsonb;
CREATE INDEX survey_requests_contact_keys_pending ON survey_requests (request_id) WHERE contact_keys_pending;
DROP INDEX survey_requests_contacts;
CREATE INDEX survey_requests_contacts ON survey_requests USING gin (contact_keys);
