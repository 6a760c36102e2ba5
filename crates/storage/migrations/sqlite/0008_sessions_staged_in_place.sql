-- A full-sync session writes the members it lists that are not current yet straight into
-- `audience_members`, marked with the session (`staged_session`): such a row counts only
-- once its session is the audience's applied one (`audiences.last_session_id`), so the
-- apply switches a million new members in one row update instead of copying them. Members
-- that were current already are still staged in `sync_staged_members` (their current row
-- must not change before the apply). NULL: a member like before this migration.
--
-- The table is rebuilt WITHOUT ROWID at the same time: rows are small and always found by
-- their key (audience, distinct id) or through the match-key index, so the key itself is the
-- table's b-tree and each insert writes two b-trees instead of three. The rebuild copies
-- every member once (seconds per million; see docs/operations.md).
CREATE TABLE audience_members_new (
    audience_id TEXT NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    provider_member_id TEXT NOT NULL,
    reference_id TEXT,
    match_key TEXT NOT NULL,
    traits TEXT NOT NULL,
    entered_at TEXT NOT NULL,
    exited_at TEXT,
    -- The full-sync session that last listed this member.
    last_session TEXT,
    staged_session TEXT,
    PRIMARY KEY (audience_id, provider_member_id)
) WITHOUT ROWID;
INSERT INTO audience_members_new
    (audience_id, provider_member_id, reference_id, match_key, traits, entered_at, exited_at, last_session)
SELECT audience_id, provider_member_id, reference_id, match_key, traits, entered_at, exited_at, last_session
FROM audience_members;
DROP TABLE audience_members;
ALTER TABLE audience_members_new RENAME TO audience_members;
CREATE INDEX audience_members_by_match_key ON audience_members (match_key, audience_id);
