-- Long runs served as MCP tasks (src/gateway/tasks.rs): one row per task, keyed by the SHA-256 of its
-- id, bound to the user who started it. `work` (what to follow) and `result` (the final tool result)
-- are sealed for (user, task). The instance following the run holds a lease it renews; when the lease
-- runs out (that instance is gone), any instance sharing the store takes it and follows on.
CREATE TABLE tasks (
    task_hash      TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    status_message TEXT,
    work           TEXT    NOT NULL,
    result         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    lease_holder   TEXT,
    lease_until    INTEGER
) STRICT;
CREATE INDEX tasks_user ON tasks (user_id, created_at);
CREATE INDEX tasks_expires_at ON tasks (expires_at);
