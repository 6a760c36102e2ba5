-- The SDK reads which audiences a user is a current member of from this index alone: with
-- `exited_at` in it, one seek answers for every audience (a user in 20 audiences cost 20
-- row lookups, ~40 random pages, before). Only a member's leaving or coming back rewrites
-- the entry; the rows themselves are read just for the one membership an invite names.
DROP INDEX audience_members_by_match_key;
CREATE INDEX audience_members_by_match_key ON audience_members (match_key, audience_id, exited_at);
