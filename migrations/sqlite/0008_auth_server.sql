-- devgate as the authorization server of its own MCP endpoint (src/auth_server/): registered clients,
-- authorization codes, grants with their access and refresh tokens, and remembered consents. Codes and
-- tokens are stored only as their hex SHA-256. `groups` columns hold a JSON array of group names.

-- Clients registered dynamically (RFC 7591) or known by their metadata document (the client id is the
-- document's https URL; `expires_at` says when the cached copy must be fetched again). Clients from the
-- config are not stored. A revoked client keeps its row (`revoked_at`) so its id stays refused.
CREATE TABLE as_clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('dynamic', 'metadata')),
    name          TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL,
    secret_hash   TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER
) STRICT;

-- A grant: what one user let one client do at one resource. Its tokens go when it is revoked.
CREATE TABLE as_grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    groups     TEXT    NOT NULL DEFAULT '[]',
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    resource   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX as_grants_user ON as_grants (user_id);
CREATE INDEX as_grants_client ON as_grants (client_id);

-- Authorization codes: single use. A used code stays (used = 1) until it expires, so a replay is
-- recognised and the grant it produced revoked.
CREATE TABLE as_codes (
    code_hash      TEXT    NOT NULL PRIMARY KEY,
    grant_id       TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    groups         TEXT    NOT NULL DEFAULT '[]',
    client_id      TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    used           INTEGER NOT NULL DEFAULT 0,
    expires_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX as_codes_expires_at ON as_codes (expires_at);

-- Access tokens (short-lived) and refresh tokens (rotating; a used one stays, used = 1, so its reuse
-- revokes the grant).
CREATE TABLE as_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    grant_id   TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('access', 'refresh')),
    used       INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX as_tokens_grant ON as_tokens (grant_id);
CREATE INDEX as_tokens_expires_at ON as_tokens (expires_at);

-- Consent a user gave a client, remembered until withdrawn.
CREATE TABLE as_consents (
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;
