-- devgate vault schema (PostgreSQL): the same tables and columns as migrations/sqlite/. Timestamps are
-- unix seconds. Token columns hold values sealed by vault::seal::Sealer; states, tickets and API keys are
-- stored only as their hex SHA-256.

CREATE TABLE connections (
    user_id       TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    access_token  TEXT    NOT NULL,
    refresh_token TEXT,
    expires_at    BIGINT,
    scopes        TEXT    NOT NULL DEFAULT '',
    account       TEXT    NOT NULL DEFAULT '',
    account_id    TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'broken')),
    status_detail TEXT,
    version       BIGINT  NOT NULL DEFAULT 1,
    updated_at    BIGINT  NOT NULL,
    -- Who is renewing the tokens, until when: one refresh at a time across instances.
    lease_holder  TEXT,
    lease_until   BIGINT,
    PRIMARY KEY (user_id, provider)
);

CREATE TABLE oauth_states (
    state_hash     TEXT   NOT NULL PRIMARY KEY,
    user_id        TEXT   NOT NULL,
    provider       TEXT   NOT NULL,
    pkce_verifier  TEXT   NOT NULL,
    scopes         TEXT   NOT NULL DEFAULT '',
    elicitation_id TEXT,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

CREATE TABLE tickets (
    ticket_hash    TEXT   NOT NULL PRIMARY KEY,
    user_id        TEXT   NOT NULL,
    provider       TEXT   NOT NULL,
    scopes         TEXT   NOT NULL DEFAULT '',
    elicitation_id TEXT,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX tickets_expiry ON tickets (expires_at);

CREATE TABLE api_keys (
    id         TEXT   NOT NULL PRIMARY KEY,
    key_hash   TEXT   NOT NULL UNIQUE,
    user_id    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
