-- Confirmations of destructive calls (src/confirm.rs): the same tables as migrations/sqlite/0005. A
-- confirm-page ticket (SHA-256) bound to `binding` (SHA-256 over user, tool, canonical arguments and
-- summary), approved once on the page and deleted by the one retried call it lets run; `summary` is sealed.
CREATE TABLE confirmations (
    ticket_hash TEXT   NOT NULL PRIMARY KEY,
    binding     TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    tool        TEXT   NOT NULL,
    summary     TEXT   NOT NULL,
    approved    BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX confirmations_binding ON confirmations (binding);
CREATE INDEX confirmations_expiry ON confirmations (expires_at);

-- The nonces (as SHA-256) of `requestState` values already accepted, so each answer counts once.
CREATE TABLE used_request_states (
    nonce_hash TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_request_states_expiry ON used_request_states (expires_at);
