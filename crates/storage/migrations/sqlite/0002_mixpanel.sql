-- Mixpanel connections (0 or 1 per project), pending connect attempts awaiting a project
-- choice, the connected project's cohorts as last read, and the event catalog.

CREATE TABLE mixpanel_connections (
    project_id TEXT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    -- Versioned AEAD envelope under the application key, bound to this row.
    secret_ciphertext TEXT NOT NULL,
    mixpanel_project_id TEXT NOT NULL,
    mixpanel_project_name TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    region TEXT NOT NULL CHECK (region IN ('us', 'eu', 'in')),
    timezone TEXT NOT NULL,
    workspace_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('connected', 'credentials_rejected', 'unreachable')),
    status_detail TEXT,
    connected_at TEXT NOT NULL,
    last_verified_at TEXT NOT NULL
);

CREATE TABLE mixpanel_connect_attempts (
    token_hash TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    secret_ciphertext TEXT NOT NULL,
    -- JSON array of the discovered projects offered in the picker.
    candidates TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX mixpanel_connect_attempts_by_project ON mixpanel_connect_attempts (project_id);

CREATE TABLE mixpanel_cohorts (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    cohort_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    member_count BIGINT NOT NULL,
    is_visible INTEGER NOT NULL,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (project_id, cohort_id)
);

CREATE TABLE event_catalog (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seen_in_mixpanel_at TEXT,
    app_count BIGINT NOT NULL DEFAULT 0,
    app_first_seen_at TEXT,
    app_last_seen_at TEXT,
    PRIMARY KEY (project_id, name)
);
