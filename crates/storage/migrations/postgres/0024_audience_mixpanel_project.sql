-- The Mixpanel project an audience's cohort belongs to. A cohort of another Mixpanel project
-- with the same id (the connection moved to another project) is refused, not merged into the
-- audience. Audiences from before belong to the project connected now, or to the next
-- delivery's when none is.
ALTER TABLE audiences ADD COLUMN mixpanel_project_id TEXT;
UPDATE audiences SET mixpanel_project_id = (
    SELECT c.mixpanel_project_id FROM mixpanel_connections c WHERE c.project_id = audiences.project_id
);
