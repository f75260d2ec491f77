-- Who is renewing a connection's tokens, until when: one refresh at a time across processes and
-- instances (Bitbucket's refresh tokens rotate on every use, so a second refresh would fail).
ALTER TABLE connections ADD COLUMN lease_holder TEXT;
ALTER TABLE connections ADD COLUMN lease_until INTEGER;
