-- A used connect ticket is kept, marked, until it expires, so its page can say "already used" rather
-- than "expired". Tickets pending across the upgrade are unused (NULL).
ALTER TABLE tickets ADD COLUMN used_at BIGINT;
