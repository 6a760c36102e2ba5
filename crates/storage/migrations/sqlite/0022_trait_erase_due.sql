-- Since when the project's members and attribution records may hold trait keys its allowlist
-- no longer names: set by every save of the allowlist, cleared by the erase that followed it
-- once it completed (unless a later save set it again). A server that stops mid-erase
-- resumes the erase at its next start. NULL: nothing to erase.
ALTER TABLE projects ADD COLUMN trait_erase_due TEXT;
-- Servers before this migration kept the keys taken off an allowlist (they only stopped
-- serving them): the first start after it erases them. Written as the server writes a time
-- (RFC 3339, whole seconds), so the erase that completes finds it unchanged and clears it.
UPDATE projects SET trait_erase_due = strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now');
