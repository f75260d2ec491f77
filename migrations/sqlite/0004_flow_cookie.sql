-- The browser an authorization was started in: SHA-256 of the flow cookie set by the Connect click.
-- The callback finishes only in a browser that sends the matching cookie. States pending across the
-- upgrade get '' and are refused at the callback (they live 10 minutes; the user asks for a new link).
ALTER TABLE oauth_states ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
