-- When the event names shown were read from Mixpanel, as `cohorts_read_at` for cohorts: a
-- read that listed no names left no name with its time, so an older read landing after it
-- was taken for the newer. Kept from the names read before, for reads landing during an
-- upgrade.
ALTER TABLE mixpanel_connections ADD COLUMN event_names_read_at TEXT;
UPDATE mixpanel_connections SET event_names_read_at =
    (SELECT MAX(seen_in_mixpanel_at) FROM event_catalog WHERE event_catalog.project_id = mixpanel_connections.project_id);
