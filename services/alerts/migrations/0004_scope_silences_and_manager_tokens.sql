-- Scoped permissions (issue 14): a manager token carries the teams whose alerts it may
-- list, act on and silence; revoking one records who did.
ALTER TABLE manager_tokens
    ADD COLUMN teams text[] NOT NULL DEFAULT '{}',
    ADD COLUMN revoked_by text;

-- A silence mutes a -3 alert's escalation beyond level 1 only when an admin's silence
-- says so; every silence has an audit trail (created, expired, capped).
ALTER TABLE silences ADD COLUMN include_escalations boolean NOT NULL DEFAULT false;
CREATE TABLE silence_events (
    id bigserial PRIMARY KEY,
    silence_id text NOT NULL REFERENCES silences (silence_id),
    at timestamptz NOT NULL,
    action text NOT NULL CHECK (action IN ('created', 'expired', 'capped')),
    actor text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX silence_events_silence_idx ON silence_events (silence_id, id);

-- The trail of the silences made before it starts with their creation.
INSERT INTO silence_events (silence_id, at, action, actor, detail)
SELECT silence_id, created_at, 'created', created_by,
       jsonb_build_object('matchers', matchers, 'starts_at', starts_at, 'ends_at', ends_at, 'comment', comment)
FROM silences;
INSERT INTO silence_events (silence_id, at, action, actor, detail)
SELECT silence_id, ends_at, 'expired', expired_by, '{}'
FROM silences
WHERE expired_by IS NOT NULL;

-- The silences made before the rules keep to them: a manager's global silence (no team
-- matcher, or a team glob) ends now, and none mutes longer than 7 days from now
-- (ALERTS_SILENCE_MAX_DAYS's default).
WITH ended AS (
    UPDATE silences SET ends_at = greatest(starts_at + interval '1 microsecond', now()),
                        expired_by = coalesce(expired_by, 'system:upgrade')
    WHERE created_by <> 'admin' AND ends_at > now()
      AND (NOT matchers ? 'team' OR EXISTS (
          SELECT 1 FROM jsonb_array_elements_text(CASE jsonb_typeof(matchers -> 'team')
                                                  WHEN 'array' THEN matchers -> 'team'
                                                  ELSE jsonb_build_array(matchers -> 'team') END) AS t (team)
          WHERE t.team ~ '[][*?]'))
    RETURNING silence_id)
INSERT INTO silence_events (silence_id, at, action, actor, detail)
SELECT silence_id, now(), 'expired', 'system:upgrade',
       '{"reason": "a global silence is an admin''s to make"}'::jsonb
FROM ended;

WITH capped AS (
    UPDATE silences SET ends_at = greatest(starts_at, now()) + interval '7 days'
    WHERE ends_at > greatest(starts_at, now()) + interval '7 days'
    RETURNING silence_id, ends_at)
INSERT INTO silence_events (silence_id, at, action, actor, detail)
SELECT silence_id, now(), 'capped', 'system:upgrade', jsonb_build_object('ends_at', ends_at)
FROM capped;
