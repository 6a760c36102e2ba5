-- Who made each secret key, as said when it was made (an account's address, the secret key
-- that made it over REST, `admin bootstrap`): any secret key can make keys, so after a leak
-- the keys the leaked one made are told apart. NULL for keys made before it was kept.
ALTER TABLE secret_keys ADD COLUMN created_by TEXT;
