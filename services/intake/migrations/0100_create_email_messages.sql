-- Every mail the email channel received, once per Message-ID (or, without one,
-- per SHA-256 of the raw bytes): the dedupe record and the audit trail of what
-- became feedback, what was an auto-reply or bounce, and what was rejected and why.
-- The mail itself is not stored.
CREATE TABLE email_messages (
    message_id text PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('accepted', 'auto_reply', 'rejected')),
    reason text,
    feedback_id text,
    via text NOT NULL CHECK (via IN ('smtp', 'http')),
    size_bytes integer NOT NULL CHECK (size_bytes >= 0),
    attachments integer NOT NULL DEFAULT 0,
    received_at timestamptz NOT NULL DEFAULT now(),
    duplicates integer NOT NULL DEFAULT 0,
    last_duplicate_at timestamptz,
    CHECK ((status = 'accepted') = (feedback_id IS NOT NULL))
);

CREATE INDEX email_messages_received_at ON email_messages (received_at);
