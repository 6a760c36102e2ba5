-- The answers of REST creates sent with an `Idempotency-Key`, one per key per project,
-- written in the transaction of what the create made: a retry with the key gets the
-- answer again (status and body, byte for byte) instead of a second study or rule. A
-- record older than 24 hours answers nothing; a create with its key replaces it, and the
-- hourly job removes the rest (by age, hence the index).
CREATE TABLE idempotency_keys (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    body BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
