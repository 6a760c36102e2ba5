-- Studies and their launch rules; when the project's app first called the SDK API.

ALTER TABLE projects ADD COLUMN sdk_contacted_at TEXT;
-- The project contact limit: at most one invite per user per this many days (NULL = off).
ALTER TABLE projects ADD COLUMN contact_limit_days BIGINT;

CREATE TABLE studies (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'archived')),
    interview_url TEXT NOT NULL,
    launch_mode TEXT NOT NULL CHECK (launch_mode IN ('in_app', 'browser')),
    weekly_limit BIGINT,
    monthly_limit BIGINT,
    public_code TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX studies_by_project ON studies (project_id, id);

CREATE TABLE launch_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    study_id TEXT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'archived')),
    trigger_type TEXT NOT NULL CHECK (trigger_type IN ('app_event', 'audience')),
    trigger_value TEXT NOT NULL,
    surface TEXT NOT NULL CHECK (surface IN ('sdk_prompt', 'direct_link')),
    prompt_title TEXT NOT NULL,
    prompt_message TEXT NOT NULL,
    prompt_start_label TEXT NOT NULL,
    prompt_dismiss_label TEXT NOT NULL,
    priority BIGINT NOT NULL,
    cooldown_seconds BIGINT NOT NULL,
    max_starts BIGINT,
    sampling_percent BIGINT NOT NULL,
    starts_at TEXT,
    ends_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX launch_rules_by_study ON launch_rules (study_id, id);
CREATE INDEX launch_rules_by_project ON launch_rules (project_id, status);
