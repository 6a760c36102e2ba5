-- A project's live rules and studies, found by the SDK's snapshot of every active project
-- each second: `status <> 'archived'` seeks no index of all rules, so every archived rule of
-- the project (unbounded: the live limit does not count them) was walked. These hold the
-- live ones only; the rules' index by project and status served those reads alone.
CREATE INDEX launch_rules_live ON launch_rules (project_id, id) WHERE status <> 'archived';
CREATE INDEX studies_live ON studies (project_id, id) WHERE status <> 'archived';
DROP INDEX launch_rules_by_project;

-- Last, so that the connections table (an older process's Mixpanel reads) is locked only
-- from here to the commit, not while the indexes above are built.
-- When the event names shown were read from Mixpanel, as `cohorts_read_at` for cohorts: a
-- read that listed no names left no name with its time, so an older read landing after it
-- was taken for the newer. Kept from the names read before, for reads landing during an
-- upgrade.
ALTER TABLE mixpanel_connections ADD COLUMN event_names_read_at TIMESTAMPTZ;
UPDATE mixpanel_connections SET event_names_read_at =
    (SELECT MAX(seen_in_mixpanel_at) FROM event_catalog WHERE event_catalog.project_id = mixpanel_connections.project_id);
