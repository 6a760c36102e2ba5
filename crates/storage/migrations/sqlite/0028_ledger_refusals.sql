-- The project's refused deliveries, newest first, for the Mixpanel page: it looked through
-- the last 20 deliveries only, so a refusal among a few hundred cohorts' deliveries went
-- unshown within one sync run.
CREATE INDEX sync_ledger_refusals ON sync_ledger (project_id, id) WHERE outcome = 'rejected';
