-- A full-sync page starting a run (no page of its session and page count staged) is looked
-- up in the ledger: a run seen before was applied or replaced, and its page arrives late.
-- Once per run, not per page; the ledger grows with every delivery, so by index.
CREATE INDEX sync_ledger_by_session ON sync_ledger (audience_id, session_id, total_pages)
    WHERE action = 'members';
