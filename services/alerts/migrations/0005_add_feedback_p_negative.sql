-- What the scorer said of an alerted feedback besides MOT and confidence: its text's calibrated
-- P(negative) (what a route's min_confidence is compared with; NULL without text) and what forced
-- the alert whatever the text said (an escalation cue, a negative rating).
ALTER TABLE alert_feedback
    ADD COLUMN p_negative real,
    ADD COLUMN forced_by text CHECK (forced_by IN ('escalation', 'rating'));
