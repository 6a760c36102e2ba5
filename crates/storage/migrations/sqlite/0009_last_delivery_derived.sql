-- A webhook's last delivery is its audiences' latest since the webhook was set up
-- (`audiences.last_delivery_at`, written with each delivery anyway), so a delivery no longer
-- writes the configuration row too.
ALTER TABLE cohort_sync_configs DROP COLUMN last_delivery_at;
