-- The cohort a refused delivery named (its id, and its name as a delivery's is read), kept
-- with its entry: a refusal tied to no audience (a cohort not synced yet, one of another
-- Mixpanel project, one refused before its body was read as a delivery) named no cohort in
-- the sync history. Empty for entries written before, and for deliveries applied (their
-- audience names the cohort).
ALTER TABLE sync_ledger ADD COLUMN mixpanel_cohort_id TEXT;
ALTER TABLE sync_ledger ADD COLUMN mixpanel_cohort_name TEXT;
