-- Issue 15: survey invitation funnels and recovery effectiveness.

-- Two more label columns of the pre-aggregated series: the survey (funnel) and the team (recovery).
ALTER TABLE kpi_counters
    ADD COLUMN survey text NOT NULL DEFAULT '',
    ADD COLUMN team text NOT NULL DEFAULT '';
ALTER TABLE kpi_counters DROP CONSTRAINT kpi_counters_pkey;
ALTER TABLE kpi_counters ADD PRIMARY KEY (metric, channel, location, touchpoint, severity, key, survey, team);

-- One row per step of a survey invitation (survey.invitation.v1): a step is counted once however
-- often, and under whatever event id, it arrives.
CREATE TABLE survey_funnel (
    invitation_id text NOT NULL,
    step text NOT NULL,
    survey_id text NOT NULL,
    reason text,
    at timestamptz NOT NULL,
    PRIMARY KEY (invitation_id, step)
);
CREATE INDEX survey_funnel_at_idx ON survey_funnel (at);

-- Recovery effectiveness: the MOT of the negative feedback that raised an alert (alert.raised.v1's
-- severity) against the MOT of each answer to its recovery survey (feedback.received.v1 naming the
-- alert, scored by feedback.scored.v1). The three arrive in any order; an answer is counted once,
-- when all three are known.
ALTER TABLE alerts
    ADD COLUMN team text,
    ADD COLUMN raised_mot smallint CHECK (raised_mot BETWEEN -3 AND -1);
UPDATE alerts SET raised_mot = severity;  -- before this, the severity stored is the best we know
CREATE TABLE recovery_answers (
    feedback_id text PRIMARY KEY,
    alert_id text NOT NULL,
    counted boolean NOT NULL DEFAULT false
);
CREATE INDEX recovery_answers_alert_idx ON recovery_answers (alert_id) WHERE NOT counted;
