-- When the cohort list shown was read from Mixpanel: two refreshes at once (two tabs, two
-- processes) could record their lists out of order, the older read replacing the newer.
ALTER TABLE mixpanel_connections ADD COLUMN cohorts_read_at TIMESTAMPTZ;
