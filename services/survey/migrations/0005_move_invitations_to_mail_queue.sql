-- Invitations are sent through the shared mail queue (shared/mail, migration
-- component "mail", applied before this one): the invitation is rendered and
-- queued in the transaction that records the survey.requested.v1, and its
-- delivery state (pending / sending / sent / uncertain / failed) lives in
-- mail_queue. A request keeps which mail is its invitation; NULL: the customer
-- has no usable email address (the invitation is "unsendable").
ALTER TABLE survey_requests ADD COLUMN mail_id text UNIQUE;
UPDATE survey_requests SET mail_id = 'survey-invitation:' || request_id WHERE delivery_status <> 'unsendable';

-- Sent invitations keep their record (their bytes were never stored).
INSERT INTO mail_queue (mail_id, purpose, ref, message_id, recipients, message, state, attempts, next_attempt_at,
                        created_at, sent_at)
SELECT mail_id, 'survey_invitation', request_id, message_id, ARRAY[customer ->> 'email'], NULL, 'sent', attempts,
       coalesce(sent_at, created_at), created_at, sent_at
FROM survey_requests
WHERE delivery_status = 'sent';

-- Invitations the old sender had not delivered are not lost: pending ones, ones
-- it was sending when it stopped (their outcome is unknown: resent, with the same
-- Message-ID) and failed ones (it gave up after six transient failures too and did
-- not record which; issue 13 gives up only on a permanent refusal, and a
-- permanently refused address is refused again and ends failed). SQL cannot
-- render a mail: the survey service renders and queues these at start
-- (services.survey.invitations.queue_backlog) and empties this table.
CREATE TABLE survey_invitation_backlog (
    request_id text PRIMARY KEY REFERENCES survey_requests (request_id)
);
INSERT INTO survey_invitation_backlog (request_id)
SELECT request_id FROM survey_requests WHERE delivery_status IN ('pending', 'sending', 'failed');

DROP INDEX survey_requests_due;
DROP INDEX survey_requests_sending;
ALTER TABLE survey_requests
    DROP COLUMN delivery_status,
    DROP COLUMN attempts,
    DROP COLUMN next_attempt_at,
    DROP COLUMN claimed_at,
    DROP COLUMN sent_at,
    DROP COLUMN message_id,
    DROP COLUMN last_error;
