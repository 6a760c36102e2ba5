-- The SDK reads a user's memberships across a project's audiences by match key: with the
-- match key first, that is one index seek over adjacent entries instead of one seek per
-- audience. Lookups within one audience (`audience_id = … AND match_key = …`) use it as well.
DROP INDEX audience_members_by_match_key;
CREATE INDEX audience_members_by_match_key ON audience_members (match_key, audience_id);
