-- Alerts for negative moments of truth, the feedback grouped into them, their
-- recovery-loop history, the notifications they cause, silences, manager
-- tokens and each customer's recent contact history.

CREATE TABLE alerts (
    alert_id text PRIMARY KEY,
    feedback_id text NOT NULL UNIQUE,          -- the feedback that raised it: one alert per feedback event
    severity integer NOT NULL CHECK (severity BETWEEN -3 AND -1),
    status text NOT NULL CHECK (status IN ('open', 'acknowledged', 'explore', 'offer', 'action', 'confirm', 'resolved', 'reopened')),
    channel text NOT NULL,
    location text,
    touchpoint text,
    customer_key text,
    customer jsonb,                            -- contact details, for the recovery survey
    language text,
    summary text NOT NULL,
    route text NOT NULL,
    team text NOT NULL,
    recipients text[] NOT NULL,                -- everyone of the team (who may act on it)
    silence_id text,                           -- matched a silence when raised: stored, not mailed
    raised_at timestamptz NOT NULL,
    sla_due_at timestamptz,                    -- next escalation; NULL once acknowledged or past the last level
    escalation_level integer NOT NULL DEFAULT 1,
    sla_breached boolean NOT NULL DEFAULT false,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at timestamptz,
    resolved_by text,
    reopen_count integer NOT NULL DEFAULT 0,
    feedback_count integer NOT NULL DEFAULT 1,
    last_feedback_at timestamptz NOT NULL,
    last_notified_at timestamptz,
    updated_at timestamptz NOT NULL
);
CREATE INDEX alerts_open_customer_idx ON alerts (customer_key) WHERE status <> 'resolved' AND customer_key IS NOT NULL;
CREATE INDEX alerts_open_place_idx ON alerts (location, touchpoint, last_feedback_at) WHERE status <> 'resolved';
CREATE INDEX alerts_sla_due_idx ON alerts (sla_due_at) WHERE sla_due_at IS NOT NULL;
CREATE INDEX alerts_raised_at_idx ON alerts (raised_at DESC);
CREATE INDEX alerts_status_idx ON alerts (status);

-- Every negative feedback linked to an alert (the raising one, grouped ones, recovery answers).
CREATE TABLE alert_feedback (
    feedback_id text PRIMARY KEY,
    alert_id text NOT NULL REFERENCES alerts (alert_id),
    role text NOT NULL CHECK (role IN ('raised', 'grouped', 'recovery_answer')),
    mot integer NOT NULL CHECK (mot BETWEEN -3 AND 3),
    confidence real NOT NULL,
    cues jsonb NOT NULL,
    escalation jsonb NOT NULL,
    channel text NOT NULL,
    location text,
    touchpoint text,
    text text,
    rating jsonb,
    language text,
    occurred_at timestamptz,
    received_at timestamptz NOT NULL,
    linked_at timestamptz NOT NULL
);
CREATE INDEX alert_feedback_alert_idx ON alert_feedback (alert_id, linked_at);

-- Who did what when: raise, group, ack, the MOT-loop steps, escalation, resolve, reopen.
CREATE TABLE alert_events (
    id bigserial PRIMARY KEY,
    alert_id text NOT NULL REFERENCES alerts (alert_id),
    at timestamptz NOT NULL,
    action text NOT NULL,
    actor text NOT NULL,
    from_status text,
    to_status text,
    note text
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, id);

-- One row per (alert, kind, level, seq): written in the transaction that
-- decided it, sent by the background sender; its Message-ID is derived from
-- notification_id, so every attempt of one notification is the same mail.
--   pending -> sending -> sent
--                      -> pending (SMTP refused / unreachable: retry with backoff) -> failed (attempts exhausted)
--                      -> uncertain (process died mid-send: outcome unknown; not resent by default)
--   suppressed: a silence matched; kept for the record, never sent.
CREATE TABLE notifications (
    notification_id text PRIMARY KEY,
    alert_id text NOT NULL REFERENCES alerts (alert_id),
    kind text NOT NULL CHECK (kind IN ('raised', 'escalation', 'update', 'reopened')),
    level integer NOT NULL,
    seq integer NOT NULL DEFAULT 0,
    recipients text[] NOT NULL,
    subject text NOT NULL,
    body_text text NOT NULL,
    body_html text NOT NULL,
    message_id text NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'uncertain', 'suppressed')),
    silence_id text,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_at timestamptz,
    claimed_by text,
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    UNIQUE (alert_id, kind, level, seq)
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_sending_idx ON notifications (claimed_at) WHERE status = 'sending';

-- Silences (Alertmanager style): matchers + time range + author + comment.
CREATE TABLE silences (
    silence_id text PRIMARY KEY,
    matchers jsonb NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    created_by text NOT NULL,
    comment text NOT NULL,
    created_at timestamptz NOT NULL,
    expired_by text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_active_idx ON silences (ends_at);

-- Manager API tokens issued by an admin (the token itself is signed; this row allows revocation).
CREATE TABLE manager_tokens (
    token_id text PRIMARY KEY,
    email text NOT NULL,
    issued_by text NOT NULL,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- A customer's recent moments of truth (from every scored feedback with a customer key).
CREATE TABLE customer_moments (
    customer_key text NOT NULL,
    feedback_id text NOT NULL,
    mot integer NOT NULL,
    channel text NOT NULL,
    location text,
    touchpoint text,
    at timestamptz NOT NULL,
    PRIMARY KEY (customer_key, feedback_id)
);
CREATE INDEX customer_moments_recent_idx ON customer_moments (customer_key, at DESC);
CREATE INDEX customer_moments_at_idx ON customer_moments (at);
