-- A user's invites and the rule that at most one of them is issued share one index: its
-- third column is 0 for the issued invite and NULL for the others (NULLs never collide).
-- Each issued invite lands on a random page of every index keyed by user; with one such
-- index instead of two, an invite dirties one page fewer in each commit (docs/benchmarks.md).
DROP INDEX invites_one_issued_per_user;
DROP INDEX invites_by_user;
CREATE UNIQUE INDEX invites_by_user
    ON invites (project_id, reference_id, (CASE WHEN state = 'issued' THEN 0 END));
