-- Alert mail goes through the shared mail queue (shared/mail, migration component
-- "mail", applied before this one), one mail per recipient: purpose
-- 'alert_notification', ref = the notification, mail_id
-- 'alert-notification:<notification_id>:<recipient>'. A notification row stays the
-- domain record (who was told what about which alert, when); its delivery state is
-- its mails' (pending / sending / sent / uncertain / failed), shown with the alert.
-- A notification a silence matched (silence_id set) is stored and never queued.

-- Sent notifications keep their record: one mail to all their recipients, as they
-- were sent (their bytes were never stored).
INSERT INTO mail_queue (mail_id, purpose, ref, message_id, recipients, message, state, attempts, next_attempt_at,
                        created_at, sent_at, delivered_to)
SELECT 'alert-notification:' || notification_id, 'alert_notification', notification_id, message_id, recipients, NULL,
       'sent', attempts, coalesce(sent_at, created_at), created_at, sent_at, recipients
FROM notifications
WHERE status = 'sent';

-- Notifications the old sender had not delivered are not lost: pending ones, ones it
-- was sending when it stopped or whose outcome it did not know (resent, with the same
-- Message-ID: issue 13's policy), and failed ones (it gave up after twelve attempts,
-- transient failures included; a recipient refused permanently is refused again and
-- the mail ends failed). SQL cannot write a mail's bytes: alerts queues these at start
-- (services/alerts/repository/backlog.py) and empties this table.
CREATE TABLE notification_backlog (
    notification_id text PRIMARY KEY REFERENCES notifications (notification_id),
    message_id text NOT NULL,
    body_text text NOT NULL,
    body_html text NOT NULL
);
INSERT INTO notification_backlog (notification_id, message_id, body_text, body_html)
SELECT notification_id, message_id, body_text, body_html
FROM notifications
WHERE status IN ('pending', 'sending', 'uncertain', 'failed');

DROP INDEX notifications_due_idx;
DROP INDEX notifications_sending_idx;
ALTER TABLE notifications
    DROP COLUMN status,
    DROP COLUMN body_text,
    DROP COLUMN body_html,
    DROP COLUMN message_id,
    DROP COLUMN attempts,
    DROP COLUMN next_attempt_at,
    DROP COLUMN claimed_at,
    DROP COLUMN claimed_by,
    DROP COLUMN last_error,
    DROP COLUMN sent_at;
