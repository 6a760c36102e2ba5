-- A rule's stats count its invites by state, and its issued ones not yet expired, from this
-- index alone: with `expires_at` only in the table, counting 240,000 invites read each one's
-- row (150-230 ms on SQLite). The count still grows with the rule's invites
-- (docs/launch-rules.md). Also the seek of a rule's open prompts when it stops.
-- Built under another name first: the build blocks writes to invites, not reads; dropping
-- the old index locks the table (reads too) until the migration commits, a moment later.
CREATE INDEX invites_by_rule_new ON invites (rule_id, state, expires_at);
DROP INDEX invites_by_rule;
ALTER INDEX invites_by_rule_new RENAME TO invites_by_rule;
