-- Services without brokers: user-provided service instances (credentials, tags, a syslog
-- drain and a route service URL, given by the user) and their app credential bindings.
-- `credentials` and `tags` are JSON text. An app is bound to an instance at most once; a
-- binding goes with its app (CASCADE), and an instance is deleted only once unbound.

CREATE TABLE service_instances (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    space_guid TEXT NOT NULL REFERENCES spaces(guid) ON DELETE CASCADE,
    credentials TEXT NOT NULL,
    tags TEXT NOT NULL,
    syslog_drain_url TEXT,
    route_service_url TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX service_instances_space_name ON service_instances(space_guid, name);

CREATE TABLE service_bindings (
    guid TEXT PRIMARY KEY,
    name TEXT,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    service_instance_guid TEXT NOT NULL REFERENCES service_instances(guid) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX service_bindings_app_instance ON service_bindings(app_guid, service_instance_guid);
CREATE INDEX service_bindings_instance ON service_bindings(service_instance_guid);
