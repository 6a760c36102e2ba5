-- A diff (add_members, remove_members) is looked up in the ledger before it is applied:
-- Mixpanel delivers at least once, and one applied before (same session, action and members)
-- is a duplicate. `members_digest` tells a diff's calls apart, whatever their page_info says.
-- By index, as the ledger grows with every delivery.
ALTER TABLE sync_ledger ADD COLUMN members_digest TEXT;
CREATE INDEX sync_ledger_by_diff ON sync_ledger (audience_id, session_id, action, members_digest)
    WHERE action <> 'members';
