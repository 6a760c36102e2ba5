-- A rule's invites in code order (codes sort by issue time), for its attribution records
-- a page at a time: `GET /api/v1/launch-rules/{id}/invites`.
CREATE INDEX invites_by_rule_code ON invites (rule_id, code);
