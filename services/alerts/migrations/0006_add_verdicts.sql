-- Managers' verdicts on alerted feedback (issue 11): "correct" (a negative moment, rightly
-- alerted) or "false_alarm" (not negative), given through the API or an email link. Each keeps
-- the feedback's text and language and the scorer's result the alert rested on: what
-- `keymoment scoring export-verdicts` hands the trainer. One verdict is current per feedback
-- (replaced_at IS NULL); a later one replaces it, and the earlier ones stay as its history.
-- The texts are customers' words (personal data), like alert_feedback.text.

CREATE TABLE alert_verdicts (
    verdict_id text PRIMARY KEY,
    feedback_id text NOT NULL REFERENCES alert_feedback (feedback_id),
    alert_id text NOT NULL REFERENCES alerts (alert_id),
    verdict text NOT NULL CHECK (verdict IN ('correct', 'false_alarm')),
    decided_by text NOT NULL,
    decided_at timestamptz NOT NULL,
    via text NOT NULL CHECK (via IN ('api', 'email_link')),
    note text,
    text text,                                 -- the feedback's text as scored
    language text,
    score jsonb NOT NULL,                      -- mot, confidence, p_negative, forced_by, cues, escalation
    replaced_at timestamptz                    -- NULL: the current verdict on its feedback
);
CREATE UNIQUE INDEX alert_verdicts_current_idx ON alert_verdicts (feedback_id) WHERE replaced_at IS NULL;
CREATE INDEX alert_verdicts_alert_idx ON alert_verdicts (alert_id, decided_at);
CREATE INDEX alert_verdicts_decided_at_idx ON alert_verdicts (decided_at);
