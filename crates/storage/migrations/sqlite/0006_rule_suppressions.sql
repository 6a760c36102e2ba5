-- Per-rule counters of the pacing engine's "no": how many decisions each reason suppressed.
-- Servers add their counts in batches (a row per rule and reason, incremented).

CREATE TABLE rule_suppressions (
    rule_id TEXT NOT NULL REFERENCES launch_rules (id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (rule_id, reason)
);
-- Invite counts per rule and state, for the rule's stats.
CREATE INDEX invites_by_rule ON invites (rule_id, state);
