-- Groups for `[[policies]]`: an API key carries its user's groups (a JSON array of strings, given with
-- `devgate keys create <user> --group …`); keys made before have none. Each audited call records the
-- policy decision that applied to it (empty where no `[[policies]]` are configured).
ALTER TABLE api_keys ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audit ADD COLUMN policy TEXT NOT NULL DEFAULT '';
