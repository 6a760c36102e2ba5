-- Cohort sync turned off keeps its webhook (Mixpanel's destination URL cannot be edited):
-- deliveries are refused until it is turned on again, with the same URL and secret.
ALTER TABLE cohort_sync_configs ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;
