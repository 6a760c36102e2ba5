-- Which application key sealed this database's secrets (Mixpanel credentials) and signs its
-- links: a fingerprint of it (an HMAC, not the key), recorded on the first start. A server
-- started with another key (a lost key file replaced by a new one, a restore that left the
-- key behind, two processes with different key files) refuses to start instead of finding
-- every stored secret unreadable later.
CREATE TABLE application_key (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    fingerprint TEXT NOT NULL
);
