-- Study limits count a study's starts (its accepted invites) since a time. Issued invites,
-- the great majority and the SDK's hot write, no longer get an entry: issuing one writes
-- one b-tree fewer. (Studies are archived, never deleted, so no cascade looks invites up
-- by study.)
DROP INDEX invites_by_study;
CREATE INDEX invites_accepted_by_study ON invites (study_id, accepted_at) WHERE state = 'accepted';
