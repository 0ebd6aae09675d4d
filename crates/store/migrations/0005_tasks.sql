-- Cloud Controller's tasks (`cf run-task`): one row per task, numbered per app
-- (`sequence_id`); its state follows the scheduler's task of the same guid.

CREATE TABLE tasks (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    sequence_id BIGINT NOT NULL,
    memory_in_mb BIGINT NOT NULL,
    disk_in_mb BIGINT NOT NULL,
    log_rate_limit_in_bytes_per_second BIGINT NOT NULL,
    droplet_guid TEXT NOT NULL,
    failure_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX tasks_app_sequence ON tasks(app_guid, sequence_id);
CREATE INDEX tasks_created ON tasks(created_at);
