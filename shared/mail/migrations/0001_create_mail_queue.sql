-- The shared mail queue (shared/mail): one row per mail, holding everything
-- needed to send it, written in the transaction that decided it (the owning
-- domain row is `ref`), sent by the background sender.
--
--   pending --claim (committed before any SMTP traffic; lease renewed while alive)--> sending
--   sending --the relay accepted it for every recipient not refused--> sent
--   sending --some recipients deferred (4xx), relay unreachable, 4xx--> pending (capped backoff, no attempt limit)
--   sending --every recipient refused permanently (5xx)--> failed
--   sending --connection broke during DATA, or the lease ran out (process died)--> uncertain:
--            MAIL_UNCERTAIN_POLICY=resend puts it back to pending at once (same bytes, same Message-ID),
--            hold leaves it 'uncertain' until a person requeues it.
CREATE TABLE mail_queue (
    mail_id text PRIMARY KEY,                  -- the caller's deterministic id: enqueueing twice is a no-op
    purpose text NOT NULL,                     -- alert_notification, survey_invitation, ...
    ref text NOT NULL,                         -- the owning domain row (notification id, survey request id)
    message_id text NOT NULL,                  -- the Message-ID header, the same on every attempt
    recipients text[] NOT NULL CHECK (cardinality(recipients) > 0),  -- SMTP envelope recipients
    message bytea,                             -- the RFC 5322 bytes (CRLF); NULL only for a sent mail whose bytes
                                               -- were not kept (carried over from an older delivery record)
    state text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'uncertain', 'failed')),
    attempts integer NOT NULL DEFAULT 0,       -- SMTP transactions started (claims)
    next_attempt_at timestamptz NOT NULL,
    claimed_by text,                           -- the sender holding it while 'sending'
    lease_until timestamptz,                   -- renewed while that sender lives
    delivered_to text[] NOT NULL DEFAULT '{}', -- recipients the relay accepted it for
    refused jsonb NOT NULL DEFAULT '{}',       -- recipient -> the permanent (5xx) refusal; never retried
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,                       -- when the last recipient was settled as delivered
    CHECK (message IS NOT NULL OR state = 'sent'),
    CHECK ((state = 'sending') = (claimed_by IS NOT NULL AND lease_until IS NOT NULL))
);
CREATE INDEX mail_queue_due_idx ON mail_queue (next_attempt_at) WHERE state = 'pending';
CREATE INDEX mail_queue_leased_idx ON mail_queue (lease_until) WHERE state = 'sending';
CREATE INDEX mail_queue_unsettled_idx ON mail_queue (purpose, created_at) WHERE state IN ('pending', 'sending', 'uncertain');
CREATE INDEX mail_queue_ref_idx ON mail_queue (purpose, ref);
