-- Hearth's initial schema. Portable SQL: it runs unchanged on SQLite and PostgreSQL.
-- Times are RFC 3339 UTC strings (they sort as text); flags are BIGINT 0/1; JSON is TEXT.

CREATE TABLE uaa_users (
    guid TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    origin TEXT NOT NULL,
    email TEXT NOT NULL,
    given_name TEXT,
    family_name TEXT,
    password_hash TEXT,
    active BIGINT NOT NULL,
    verified BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL,
    last_logon_at TEXT,
    previous_logon_at TEXT,
    version BIGINT NOT NULL,
    UNIQUE (username, origin)
);

CREATE TABLE uaa_login_failures (
    user_guid TEXT NOT NULL REFERENCES uaa_users(guid) ON DELETE CASCADE,
    at TEXT NOT NULL
);
CREATE INDEX uaa_login_failures_user ON uaa_login_failures(user_guid, at);

CREATE TABLE uaa_groups (
    guid TEXT PRIMARY KEY,
    display_name TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE uaa_group_members (
    group_guid TEXT NOT NULL REFERENCES uaa_groups(guid) ON DELETE CASCADE,
    member_guid TEXT NOT NULL REFERENCES uaa_users(guid) ON DELETE CASCADE,
    PRIMARY KEY (group_guid, member_guid)
);

CREATE TABLE uaa_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT,
    authorized_grant_types TEXT NOT NULL,
    scope TEXT NOT NULL,
    authorities TEXT NOT NULL,
    access_token_validity BIGINT,
    refresh_token_validity BIGINT,
    created_at TEXT NOT NULL
);

CREATE TABLE uaa_signing_keys (
    kid TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    is_primary BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE uaa_refresh_tokens (
    jti TEXT PRIMARY KEY,
    user_guid TEXT REFERENCES uaa_users(guid) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE organization_quotas (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE organizations (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    suspended BIGINT NOT NULL,
    quota_guid TEXT REFERENCES organization_quotas(guid),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE spaces (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    org_guid TEXT NOT NULL REFERENCES organizations(guid) ON DELETE CASCADE,
    allow_ssh BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (org_guid, name)
);
CREATE INDEX spaces_org ON spaces(org_guid);

CREATE TABLE users (
    guid TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE roles (
    guid TEXT PRIMARY KEY,
    role_type TEXT NOT NULL,
    user_guid TEXT NOT NULL REFERENCES users(guid) ON DELETE CASCADE,
    org_guid TEXT REFERENCES organizations(guid) ON DELETE CASCADE,
    space_guid TEXT REFERENCES spaces(guid) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (role_type, user_guid, org_guid, space_guid)
);
CREATE INDEX roles_user ON roles(user_guid);
CREATE INDEX roles_org ON roles(org_guid);
CREATE INDEX roles_space ON roles(space_guid);

CREATE TABLE stacks (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    build_rootfs_image TEXT NOT NULL,
    run_rootfs_image TEXT NOT NULL,
    is_default BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE domains (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    internal BIGINT NOT NULL,
    org_guid TEXT REFERENCES organizations(guid) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE domain_shared_orgs (
    domain_guid TEXT NOT NULL REFERENCES domains(guid) ON DELETE CASCADE,
    org_guid TEXT NOT NULL REFERENCES organizations(guid) ON DELETE CASCADE,
    PRIMARY KEY (domain_guid, org_guid)
);

CREATE TABLE routes (
    guid TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    path TEXT NOT NULL,
    port BIGINT,
    domain_guid TEXT NOT NULL REFERENCES domains(guid) ON DELETE CASCADE,
    space_guid TEXT NOT NULL REFERENCES spaces(guid) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX routes_unique ON routes(domain_guid, host, path, port);
CREATE INDEX routes_space ON routes(space_guid);

CREATE TABLE apps (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    space_guid TEXT NOT NULL REFERENCES spaces(guid) ON DELETE CASCADE,
    state TEXT NOT NULL,
    lifecycle_type TEXT NOT NULL,
    lifecycle_data TEXT NOT NULL,
    environment_variables TEXT NOT NULL,
    droplet_guid TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (space_guid, name)
);
CREATE INDEX apps_space ON apps(space_guid);

CREATE TABLE processes (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL REFERENCES apps(guid) ON DELETE CASCADE,
    process_type TEXT NOT NULL,
    command TEXT,
    instances BIGINT NOT NULL,
    memory_in_mb BIGINT NOT NULL,
    disk_in_mb BIGINT NOT NULL,
    log_rate_limit_in_bytes_per_second BIGINT NOT NULL,
    health_check TEXT NOT NULL,
    readiness_health_check TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_guid, process_type)
);

CREATE TABLE feature_flags (
    name TEXT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    custom_error_message TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE metadata (
    resource_guid TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_guid, kind, key)
);

CREATE TABLE audit_events (
    guid TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    actor_guid TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    target_guid TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_name TEXT NOT NULL,
    data TEXT NOT NULL,
    space_guid TEXT,
    org_guid TEXT,
    created_at TEXT NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX audit_events_target ON audit_events(target_guid);
CREATE INDEX audit_events_created ON audit_events(created_at);

CREATE TABLE jobs (
    guid TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    state TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_guid TEXT NOT NULL,
    user_guid TEXT,
    errors TEXT NOT NULL,
    warnings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
