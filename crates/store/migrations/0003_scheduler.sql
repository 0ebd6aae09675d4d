-- The scheduler's state (Diego's BBS): cells, desired LRPs, actual LRP instances, tasks.
-- Every row has a `version` bumped on each change: writers compare-and-swap on it, so two
-- processes cannot both claim one instance. Lists (stacks, tags, ports) and definitions are JSON text.

CREATE TABLE sched_cells (
    id TEXT PRIMARY KEY,
    memory_mb BIGINT NOT NULL,
    disk_mb BIGINT NOT NULL,
    containers BIGINT NOT NULL,
    zone TEXT NOT NULL,
    stacks TEXT NOT NULL,
    supports_images BIGINT NOT NULL,
    placement_tags TEXT NOT NULL,
    state TEXT NOT NULL,
    last_heartbeat TEXT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE desired_lrps (
    process_guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    instances BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX desired_lrps_app ON desired_lrps(app_guid);

-- One row per instance: `instance_key` is `process_guid/index`, or `process_guid/index/evacuating`
-- for the copy still running on a draining cell.
CREATE TABLE actual_lrps (
    instance_key TEXT PRIMARY KEY,
    process_guid TEXT NOT NULL,
    instance_index BIGINT NOT NULL,
    evacuating BIGINT NOT NULL,
    state TEXT NOT NULL,
    cell_id TEXT,
    instance_guid TEXT,
    address TEXT,
    ports TEXT NOT NULL,
    since TEXT NOT NULL,
    crash_count BIGINT NOT NULL,
    crash_reason TEXT,
    placement_error TEXT,
    version BIGINT NOT NULL
);
CREATE INDEX actual_lrps_process ON actual_lrps(process_guid, instance_index);
CREATE INDEX actual_lrps_cell ON actual_lrps(cell_id);

CREATE TABLE sched_tasks (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    definition TEXT NOT NULL,
    state TEXT NOT NULL,
    cell_id TEXT,
    failed BIGINT NOT NULL,
    failure_reason TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX sched_tasks_app ON sched_tasks(app_guid);
CREATE INDEX sched_tasks_cell ON sched_tasks(cell_id);
