-- Cohort sync: the webhook configuration, audiences (one per synced cohort), their members
-- (exited members are kept), staged pages of unfinished full syncs, and the delivery ledger.

ALTER TABLE projects ADD COLUMN trait_allowlist TEXT NOT NULL DEFAULT '[]';

CREATE TABLE cohort_sync_configs (
    project_id TEXT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    secret_rotated_at TEXT NOT NULL,
    last_delivery_at TEXT
);

CREATE TABLE audiences (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    mixpanel_cohort_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    member_count BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_delivery_at TEXT,
    last_synced_at TEXT,
    -- The last full-sync session applied: its pages arriving again are duplicates.
    last_session_id TEXT,
    UNIQUE (project_id, mixpanel_cohort_id)
);

CREATE TABLE audience_members (
    audience_id TEXT NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    provider_member_id TEXT NOT NULL,
    reference_id TEXT,
    match_key TEXT NOT NULL,
    traits TEXT NOT NULL,
    entered_at TEXT NOT NULL,
    exited_at TEXT,
    -- The full-sync session that last listed this member.
    last_session TEXT,
    PRIMARY KEY (audience_id, provider_member_id)
);
CREATE INDEX audience_members_by_match_key ON audience_members (audience_id, match_key);

-- Pages received of unfinished full-sync sessions, and their members as rows, so the
-- final apply is one set-based statement.
CREATE TABLE sync_staging (
    audience_id TEXT NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    page INTEGER NOT NULL,
    total_pages INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (audience_id, session_id, page)
);

CREATE TABLE sync_staged_members (
    audience_id TEXT NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    provider_member_id TEXT NOT NULL,
    reference_id TEXT,
    match_key TEXT NOT NULL,
    traits TEXT NOT NULL,
    PRIMARY KEY (audience_id, session_id, provider_member_id)
);

CREATE TABLE sync_ledger (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    audience_id TEXT REFERENCES audiences (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    session_id TEXT,
    page INTEGER,
    total_pages INTEGER,
    members INTEGER NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'staged', 'duplicate', 'rejected')),
    error TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX sync_ledger_by_audience ON sync_ledger (audience_id, id);
CREATE INDEX sync_ledger_by_project ON sync_ledger (project_id, id);
