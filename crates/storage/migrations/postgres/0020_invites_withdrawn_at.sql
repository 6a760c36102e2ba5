-- When an invite was withdrawn (its user left the audience, its rule or study stopped, or its
-- start was refused), as the attribution record keeps the time of each state change (SPEC
-- §2). Invites withdrawn before this migration keep NULL: the time was not recorded.
ALTER TABLE invites ADD COLUMN withdrawn_at TIMESTAMPTZ;
