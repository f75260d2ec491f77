-- Confirmations of destructive calls (src/confirm.rs). A confirm-page ticket, stored as its SHA-256,
-- bound to `binding` (SHA-256 over user, tool, canonical arguments and summary): approved once on the
-- page, then deleted by the one retried call it lets run. `summary` is sealed (it can quote arguments).
CREATE TABLE confirmations (
    ticket_hash TEXT    NOT NULL PRIMARY KEY,
    binding     TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    tool        TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    approved    INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX confirmations_binding ON confirmations (binding);
CREATE INDEX confirmations_expires_at ON confirmations (expires_at);

-- The nonces (as SHA-256) of `requestState` values already accepted, so each answer counts once.
CREATE TABLE used_request_states (
    nonce_hash TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX used_request_states_expires_at ON used_request_states (expires_at);
