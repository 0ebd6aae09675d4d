-- From code to droplet: packages (bits or a docker image), builds (one staging of a
-- package) and droplets (what staging made: a tarball in the blobstore or an image
-- reference with its run settings), and route mappings (a route's destinations).
-- `data`, `lifecycle`, `process_types`, `execution_metadata`, `buildpacks`, `created_by`
-- are JSON text.

CREATE TABLE packages (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    docker_password TEXT,
    blob_key TEXT,
    sha256 TEXT,
    size_bytes BIGINT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX packages_app ON packages(app_guid, created_at);

CREATE TABLE droplets (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    package_guid TEXT,
    state TEXT NOT NULL,
    error TEXT,
    lifecycle TEXT NOT NULL,
    process_types TEXT NOT NULL,
    execution_metadata TEXT NOT NULL,
    buildpacks TEXT NOT NULL,
    stack TEXT,
    image TEXT,
    blob_key TEXT,
    sha256 TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX droplets_app ON droplets(app_guid, created_at);

CREATE TABLE builds (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    package_guid TEXT NOT NULL,
    droplet_guid TEXT,
    state TEXT NOT NULL,
    error TEXT,
    lifecycle TEXT NOT NULL,
    staging_memory_in_mb BIGINT NOT NULL,
    staging_disk_in_mb BIGINT NOT NULL,
    staging_log_rate_limit_bytes_per_second BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX builds_app ON builds(app_guid, created_at);

CREATE TABLE route_mappings (
    guid TEXT PRIMARY KEY,
    route_guid TEXT NOT NULL REFERENCES routes(guid) ON DELETE CASCADE,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    process_type TEXT NOT NULL,
    app_port BIGINT NOT NULL,
    weight BIGINT,
    protocol TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX route_mappings_unique ON route_mappings(route_guid, app_guid, process_type, app_port);
CREATE INDEX route_mappings_app ON route_mappings(app_guid);

-- Buildpacks in position order (1 first); `blob_key` is the uploaded zip in the blobstore.
CREATE TABLE buildpacks (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    stack TEXT,
    position BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    locked BIGINT NOT NULL,
    state TEXT NOT NULL,
    filename TEXT,
    blob_key TEXT,
    sha256 TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX buildpacks_name_stack ON buildpacks(name, stack);
