-- One row per tool call: who, what, on which resource, how it ended. Never arguments' values beyond the
-- resource's identifiers, never a token.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    provider TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX audit_user_at ON audit (user_id, at);
CREATE INDEX audit_at ON audit (at);
