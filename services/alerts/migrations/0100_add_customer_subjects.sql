-- Customers are keyed by pseudonyms (shared.privacy.pseudonym under PRIVACY_HASH_KEY), never
-- by a plaintext contact: `customer_key` is the pseudonym of the customer's id, else email,
-- else phone (what groups and orders their feedback, in every service alike), and `subjects`
-- holds the pseudonyms of every contact the row's customer gave: what an erasure by any one
-- of them matches. A row with no customer has '{}'.
--
-- Rows written before hold plaintext keys (`id:C-1`, `email:li@example.cn`) and NULL
-- subjects: alerts rewrites them at start (services.alerts.privacy.pseudonymise_backlog),
-- which needs PRIVACY_HASH_KEY and so cannot be done here.
ALTER TABLE alerts ADD COLUMN subjects text[];
ALTER TABLE alert_feedback ADD COLUMN subjects text[];
ALTER TABLE customer_moments ADD COLUMN subjects text[];

CREATE INDEX alerts_subjects_idx ON alerts USING gin (subjects);
CREATE INDEX alert_feedback_subjects_idx ON alert_feedback USING gin (subjects);
CREATE INDEX customer_moments_subjects_idx ON customer_moments USING gin (subjects);
CREATE INDEX alerts_pseudonymise_idx ON alerts (alert_id) WHERE subjects IS NULL;
CREATE INDEX alert_feedback_pseudonymise_idx ON alert_feedback (feedback_id) WHERE subjects IS NULL;
CREATE INDEX customer_moments_pseudonymise_idx ON customer_moments (feedback_id) WHERE subjects IS NULL;
