-- Long runs served as MCP tasks (src/gateway/tasks.rs): the same table as migrations/sqlite/0010. One
-- row per task keyed by the SHA-256 of its id, bound to its user; `work` and `result` sealed; a lease
-- held by the instance following the run, taken over by another once it runs out.
CREATE TABLE tasks (
    task_hash      TEXT   NOT NULL PRIMARY KEY,
    user_id        TEXT   NOT NULL,
    tool           TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    status_message TEXT,
    work           TEXT   NOT NULL,
    result         TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    lease_holder   TEXT,
    lease_until    BIGINT
);
CREATE INDEX tasks_user ON tasks (user_id, created_at);
CREATE INDEX tasks_expiry ON tasks (expires_at);
