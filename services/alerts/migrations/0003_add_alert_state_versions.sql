-- An alert's state version: one up at every change of its status. A mail's action
-- links carry the version they were made for and are refused on a newer one (an old
-- "resolve" link cannot close a reopened alert).
ALTER TABLE alerts ADD COLUMN state_version integer NOT NULL DEFAULT 0;
