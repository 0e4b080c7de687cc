-- A mail can be forgotten (retention, a customer's erasure): its bytes, recipients,
-- delivery lists and last error are cleared and `forgotten_at` set; its record stays
-- (purpose, ref, Message-ID, state, attempts, times). Only a settled mail is forgotten:
-- one not yet sent is given up ('failed') as it is forgotten, so it never goes out.
ALTER TABLE mail_queue ADD COLUMN forgotten_at timestamptz;
ALTER TABLE mail_queue DROP CONSTRAINT mail_queue_recipients_check;
ALTER TABLE mail_queue DROP CONSTRAINT mail_queue_check;
ALTER TABLE mail_queue
    ADD CONSTRAINT mail_queue_recipients_check CHECK (cardinality(recipients) > 0 OR forgotten_at IS NOT NULL),
    ADD CONSTRAINT mail_queue_message_check CHECK (message IS NOT NULL OR state = 'sent' OR forgotten_at IS NOT NULL),
    ADD CONSTRAINT mail_queue_forgotten_check CHECK (forgotten_at IS NULL OR state IN ('sent', 'failed'));
