-- The register of erasure requests (POST /v1/privacy/erasures, `keymoment privacy erase`)
-- and of what each service reported erasing (erasure.applied.v1). No personal data: which
-- kinds of contact a request named (never the contacts or their pseudonyms, which travel
-- only in the erasure.requested.v1 event), who asked, when, and row counts. Kept for good:
-- it is the record that the erasures were done.
CREATE TABLE erasure_requests (
    erasure_id text PRIMARY KEY,
    contacts jsonb NOT NULL,                  -- kind -> how many were named, e.g. {"email": 1, "phone": 2}
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL
);
CREATE INDEX erasure_requests_requested_at_idx ON erasure_requests (requested_at DESC);

CREATE TABLE erasure_reports (
    erasure_id text NOT NULL,
    service text NOT NULL,
    erased jsonb NOT NULL,                    -- table -> rows deleted or anonymised
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (erasure_id, service)
);
