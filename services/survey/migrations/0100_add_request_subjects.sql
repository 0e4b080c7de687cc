-- The pseudonyms (shared.privacy.pseudonym under PRIVACY_HASH_KEY) of every contact of a
-- request's customer: what an erasure by any one of them matches. '{}' when it names none.
-- Requests recorded before hold NULL: survey fills them in at start from `customer`
-- (services.survey.privacy.pseudonymise_backlog), which needs the key and so cannot be done here.
ALTER TABLE survey_requests ADD COLUMN subjects text[];
CREATE INDEX survey_requests_subjects_idx ON survey_requests USING gin (subjects);
CREATE INDEX survey_requests_pseudonymise_idx ON survey_requests (request_id) WHERE subjects IS NULL;
