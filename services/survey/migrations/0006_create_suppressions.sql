-- Addresses survey never writes to again: an unsubscribe, a hard bounce, a complaint or an
-- erasure request. Kept as a pseudonym only (shared.privacy.pseudonym of the normalised
-- address under PRIVACY_HASH_KEY), so the list itself holds no address; one row per address,
-- the first reason kept (an unsubscribe or an erasure is never overwritten by a later bounce).
CREATE TABLE suppressions (
    address_hash text PRIMARY KEY,
    reason text NOT NULL CHECK (reason IN ('unsubscribed', 'bounced', 'complained', 'erased', 'manual')),
    created_at timestamptz NOT NULL,
    source text                               -- what recorded it: a survey id, 'erasure', 'admin', ...
);
