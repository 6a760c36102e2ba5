-- When members leave an audience, their unaccepted invites of that audience are withdrawn.
-- Without an index that looked at every invite of every project for each removal; this one
-- holds only issued audience invites, in order of issue within their audience (each new one
-- lands at the end of its audience's range), so issuing stays cheap.
CREATE INDEX invites_issued_by_audience ON invites (audience_id)
    WHERE state = 'issued' AND audience_id IS NOT NULL;
