-- A Message-ID counts as a duplicate only together with its sender: one sender
-- cannot claim (and so suppress) another's Message-IDs. Rows recorded before
-- have sender '' and keep matching their Message-ID from any sender until they
-- expire (INTAKE_EMAIL_RECORD_DAYS), so a retry across this change is still
-- recognised. Messages keyed by the SHA-256 of their bytes have sender ''.
ALTER TABLE email_messages ADD COLUMN sender text NOT NULL DEFAULT '';
ALTER TABLE email_messages DROP CONSTRAINT email_messages_pkey;
ALTER TABLE email_messages ADD PRIMARY KEY (message_id, sender);
