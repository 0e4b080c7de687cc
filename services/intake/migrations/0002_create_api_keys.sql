-- API keys per source ("kiosk-store-12"). Only the SHA-256 of the whole key is
-- stored; the key itself is shown once when created.
CREATE TABLE api_keys (
    id              text PRIMARY KEY,              -- the public part: km_<id>_<secret>
    name            text NOT NULL,
    secret_sha256   bytea NOT NULL,
    channels        text[] NOT NULL,               -- '*' = every channel
    origins         text[] NOT NULL DEFAULT '{}',  -- browser origins; '*' = any; empty = no browser use
    rate_per_second double precision,              -- NULL = unlimited
    burst           integer CHECK (burst IS NULL OR burst >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Every change wakes the running intake processes so their in-memory key cache reloads.
CREATE FUNCTION api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keymoment_intake_api_keys', '');
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_changed();
