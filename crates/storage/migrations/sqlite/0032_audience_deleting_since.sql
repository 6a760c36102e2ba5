-- When the audience's deletion began. A big audience's members are deleted a batch per
-- transaction (one transaction held SQLite's only writer for seconds per million members,
-- and every invite and delivery of every project waited); meanwhile no new rule may target
-- it, and a deletion a stopped process left part-way is finished by the next one.
ALTER TABLE audiences ADD COLUMN deleting_since TEXT;
