-- Invites: one respondent code per (rule, study, user), with its attribution and state;
-- and each rule's accepted starts, reserved atomically on accept.

ALTER TABLE launch_rules ADD COLUMN starts BIGINT NOT NULL DEFAULT 0;

CREATE TABLE invites (
    code TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL REFERENCES launch_rules (id) ON DELETE CASCADE,
    study_id TEXT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    reference_id TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('audience', 'app_event')),
    audience_id TEXT,
    audience_member_id TEXT,
    event_name TEXT,
    metadata TEXT NOT NULL,
    traits TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('issued', 'accepted', 'dismissed', 'expired', 'withdrawn')),
    issued_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    dismissed_at TIMESTAMPTZ
);
CREATE INDEX invites_by_user ON invites (project_id, reference_id, issued_at);
CREATE INDEX invites_by_study ON invites (study_id, state, accepted_at);
-- At most one issued invite per user: concurrent config loads cannot both issue one.
CREATE UNIQUE INDEX invites_one_issued_per_user ON invites (project_id, reference_id) WHERE state = 'issued';
