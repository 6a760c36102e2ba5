-- An account's sessions, newest first: signing in keeps at most 50 of them (a script signing
-- in again and again made a row each, kept 14 days), and a password change ends them all.
CREATE INDEX sessions_by_account ON sessions (account_id, created_at);
