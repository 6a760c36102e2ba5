-- A full-sync session writes the members it lists that are not current yet straight into
-- `audience_members`, marked with the session (`staged_session`): such a row counts only
-- once its session is the audience's applied one (`audiences.last_session_id`), so the
-- apply switches a million new members in one row update instead of copying them. Members
-- that were current already are still staged in `sync_staged_members` (their current row
-- must not change before the apply). NULL: a member like before this migration.
ALTER TABLE audience_members ADD COLUMN staged_session TEXT;
