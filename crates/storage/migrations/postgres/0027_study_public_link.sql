-- Whether a study's public link (`/i/{public code}`) opens in a plain browser. Off, the
-- study is reached only through its rules (the SDK resolves its direct links, paced).
ALTER TABLE studies ADD COLUMN public_link BOOLEAN NOT NULL DEFAULT TRUE;
