-- devgate vault schema (SQLite). Timestamps are unix seconds. Token columns hold values sealed by
-- vault::seal::Sealer; states, tickets and API keys are stored only as their hex SHA-256.
-- Columns are `user_id`, not `user`, so the PostgreSQL schema can use the same names.

-- A user's connection to a provider. `version` is bumped on every token change so that concurrent
-- refreshes can compare-and-swap (Bitbucket rotates refresh tokens on every use).
CREATE TABLE connections (
    user_id       TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    access_token  TEXT    NOT NULL,
    refresh_token TEXT,
    expires_at    INTEGER,
    scopes        TEXT    NOT NULL DEFAULT '',
    account       TEXT    NOT NULL DEFAULT '',
    account_id    TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'broken')),
    status_detail TEXT,
    version       INTEGER NOT NULL DEFAULT 1,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, provider)
) STRICT;

-- Pending authorizations (the OAuth `state`), single use, short-lived.
CREATE TABLE oauth_states (
    state_hash     TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    pkce_verifier  TEXT    NOT NULL,
    scopes         TEXT    NOT NULL DEFAULT '',
    elicitation_id TEXT,
    expires_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- Connect-link tickets, single use, short-lived.
CREATE TABLE tickets (
    ticket_hash    TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    scopes         TEXT    NOT NULL DEFAULT '',
    elicitation_id TEXT,
    expires_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX tickets_expires_at ON tickets (expires_at);

-- API keys for HTTP callers: a public id to name the key, and the key's hash.
CREATE TABLE api_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    key_hash   TEXT    NOT NULL UNIQUE,
    user_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_user_id ON api_keys (user_id);

-- Small settings, e.g. `key_check`: a marker sealed with the key the store was first used with.
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
