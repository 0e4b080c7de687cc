-- The privacy component (shared/privacy), in the schema of every service whose settings
-- include PrivacySettings.
--
-- Erasures this service has applied (erasure.requested.v1) and what it erased, table by
-- table: a replayed erasure (the same erasure_id again) is recognised and does nothing
-- more. Ids and counts only: no personal data.
CREATE TABLE erasures (
    erasure_id text PRIMARY KEY,
    applied_at timestamptz NOT NULL,
    erased jsonb NOT NULL                     -- table -> rows deleted or anonymised
);

-- Pseudonyms of erased customers with the time of their erasure (its request time):
-- events about them from before it that arrive later (a consumer behind, a dead letter
-- replayed) are dropped on arrival. Kept PROCESSED_EVENTS_RETENTION_DAYS, above Kafka's
-- retention, so no older copy can arrive after they are gone.
CREATE TABLE erased_subjects (
    subject text PRIMARY KEY,                 -- shared.privacy.pseudonym: <kind>:<32 hex digits>
    erasure_id text NOT NULL,
    erased_at timestamptz NOT NULL
);
CREATE INDEX erased_subjects_erased_at_idx ON erased_subjects (erased_at);
