-- A diff (add_members, remove_members) is looked up in the ledger before it is applied:
-- Mixpanel delivers at least once, and one applied before is a duplicate. By index, as the
-- ledger grows with every delivery.
CREATE INDEX sync_ledger_by_diff ON sync_ledger (audience_id, session_id, action, page)
    WHERE action <> 'members';
