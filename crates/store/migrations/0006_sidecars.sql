-- Sidecars: commands run beside an app's processes, in their containers.
CREATE TABLE sidecars (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    process_types TEXT NOT NULL,
    memory_in_mb BIGINT,
    origin TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_guid, name)
);
CREATE INDEX sidecars_created ON sidecars(created_at, guid);
