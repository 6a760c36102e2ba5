-- The sync ledger keeps 90 days: the hourly housekeeping deletes older entries in batches
-- (a cohort synced every 30 minutes wrote rows for good, one per page).
CREATE INDEX sync_ledger_by_time ON sync_ledger (received_at);
