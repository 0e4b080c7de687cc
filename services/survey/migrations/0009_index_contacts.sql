-- The contact rules look up the queued invitations of a batch's customers by contact key. An array
-- overlap on survey_requests (contact_keys && keys) is planned from the table's statistics, and a
-- table that grew since its last ANALYZE (a first bulk upload) got a plan comparing every row of
-- the window with every key (0.5 s per 500 invitations at 10,000 rows). One row per contact key of
-- a queued invitation, in a btree, is looked up the same way at any size and with any statistics.
CREATE TABLE survey_contacts (
    contact_key text NOT NULL,
    decided_at timestamptz NOT NULL,
    request_id text NOT NULL REFERENCES survey_requests (request_id),
    survey_id text NOT NULL,
    PRIMARY KEY (contact_key, decided_at, request_id)
);
CREATE INDEX survey_contacts_request ON survey_contacts (request_id);
CREATE INDEX survey_contacts_decided ON survey_contacts (decided_at);
INSERT INTO survey_contacts (contact_key, decided_at, request_id, survey_id)
SELECT DISTINCT k, r.decided_at, r.request_id, r.survey_id
FROM survey_requests r, unnest(r.contact_keys) AS k
WHERE r.status = 'queued';
