//! The stored rows. Wire shapes live in the api crate; these are the store's own types.

use crate::Row;
use crate::queries::{Column, Record, Value};

macro_rules! record {
    ($(#[$m:meta])* $name:ident in $table:literal key $key:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }

        impl Record for $name {
            const TABLE: &'static str = $table;
            const KEY: &'static str = stringify!($key);
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            #[allow(unused_assignments)]
            fn from_row(row: &Row<'_>) -> crate::Result<Self> {
                let mut i = 0;
                Ok(Self { $($field: { let v = <$ty as Column>::get(row, i)?; i += 1; v }),* })
            }
            fn values(&self) -> Vec<Value> {
                vec![$(Column::value(&self.$field)),*]
            }
            fn key(&self) -> &str {
                &self.$key
            }
        }
    };
}

record! {
    /// A command run beside the app's processes of the given types, in their containers
    /// (CF's sidecars). `process_types` is a JSON array, sorted.
    Sidecar in "sidecars" key guid {
        guid: String,
        app_guid: String,
        name: String,
        command: String,
        process_types: serde_json::Value,
        memory_in_mb: Option<i64>,
        origin: String,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A UAA user account (identity, password, logon history).
    UaaUser in "uaa_users" key guid {
        guid: String,
        username: String,
        origin: String,
        email: String,
        given_name: Option<String>,
        family_name: Option<String>,
        password_hash: Option<String>,
        active: bool,
        verified: bool,
        created_at: String,
        updated_at: String,
        password_changed_at: String,
        last_logon_at: Option<String>,
        previous_logon_at: Option<String>,
        version: i64,
    }
}

record! {
    /// A failed password attempt, kept for account lockout.
    LoginFailure in "uaa_login_failures" key user_guid {
        user_guid: String,
        at: String,
    }
}

record! {
    /// A UAA group; its display name is the scope it grants.
    UaaGroup in "uaa_groups" key guid {
        guid: String,
        display_name: String,
        description: Option<String>,
        created_at: String,
        updated_at: String,
        version: i64,
    }
}

record! {
    /// Membership of a user in a group.
    GroupMember in "uaa_group_members" key group_guid {
        group_guid: String,
        member_guid: String,
    }
}

record! {
    /// An OAuth client. List fields are comma-separated.
    UaaClient in "uaa_clients" key client_id {
        client_id: String,
        secret_hash: Option<String>,
        authorized_grant_types: String,
        scope: String,
        authorities: String,
        access_token_validity: Option<i64>,
        refresh_token_validity: Option<i64>,
        created_at: String,
    }
}

record! {
    /// A token signing key (RSA, PKCS#8 PEM). Exactly one is primary: it signs; all verify.
    SigningKey in "uaa_signing_keys" key kid {
        kid: String,
        private_pem: String,
        is_primary: bool,
        created_at: String,
    }
}

record! {
    /// An issued refresh token, by its `jti`; deleting it revokes the token.
    RefreshToken in "uaa_refresh_tokens" key jti {
        jti: String,
        user_guid: Option<String>,
        client_id: String,
        scope: String,
        expires_at: String,
        created_at: String,
    }
}

record! {
    /// An organization quota; `spec` holds the limits as CF's JSON (apps, services, routes, domains).
    OrgQuota in "organization_quotas" key guid {
        guid: String,
        name: String,
        spec: serde_json::Value,
        created_at: String,
        updated_at: String,
    }
}

record! {
    Org in "organizations" key guid {
        guid: String,
        name: String,
        suspended: bool,
        quota_guid: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    Space in "spaces" key guid {
        guid: String,
        name: String,
        org_guid: String,
        allow_ssh: bool,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A Cloud Controller user: the guid of a UAA user (or a client id) that may hold roles.
    CcUser in "users" key guid {
        guid: String,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// An org or space role. `role_type` is CF's name, e.g. `space_developer`.
    Role in "roles" key guid {
        guid: String,
        role_type: String,
        user_guid: String,
        org_guid: Option<String>,
        space_guid: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    Stack in "stacks" key guid {
        guid: String,
        name: String,
        description: Option<String>,
        build_rootfs_image: String,
        run_rootfs_image: String,
        is_default: bool,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A domain: shared when `org_guid` is empty, else private to (owned by) that org.
    Domain in "domains" key guid {
        guid: String,
        name: String,
        internal: bool,
        org_guid: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A private domain shared with another org.
    DomainShare in "domain_shared_orgs" key domain_guid {
        domain_guid: String,
        org_guid: String,
    }
}

record! {
    Route in "routes" key guid {
        guid: String,
        host: String,
        path: String,
        port: Option<i64>,
        domain_guid: String,
        space_guid: String,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// An app; `lifecycle_data` and `environment_variables` are JSON objects.
    App in "apps" key guid {
        guid: String,
        name: String,
        space_guid: String,
        state: String,
        lifecycle_type: String,
        lifecycle_data: serde_json::Value,
        environment_variables: serde_json::Value,
        droplet_guid: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A process of an app; health checks are CF's JSON (`type`, `data`).
    Process in "processes" key guid {
        guid: String,
        app_guid: String,
        process_type: String,
        command: Option<String>,
        instances: i64,
        memory_in_mb: i64,
        disk_in_mb: i64,
        log_rate_limit_in_bytes_per_second: i64,
        health_check: serde_json::Value,
        readiness_health_check: serde_json::Value,
        created_at: String,
        updated_at: String,
    }
}

record! {
    FeatureFlag in "feature_flags" key name {
        name: String,
        enabled: bool,
        custom_error_message: Option<String>,
        updated_at: String,
    }
}

record! {
    /// An audit event; `seq` orders events written in the same microsecond.
    AuditEvent in "audit_events" key guid {
        guid: String,
        event_type: String,
        actor_guid: String,
        actor_type: String,
        actor_name: String,
        target_guid: String,
        target_type: String,
        target_name: String,
        data: serde_json::Value,
        space_guid: Option<String>,
        org_guid: Option<String>,
        created_at: String,
        seq: i64,
    }
}

record! {
    /// An asynchronous job (`state`: PROCESSING, COMPLETE, FAILED); errors/warnings are JSON arrays.
    Job in "jobs" key guid {
        guid: String,
        operation: String,
        state: String,
        resource_type: String,
        resource_guid: String,
        user_guid: Option<String>,
        errors: serde_json::Value,
        warnings: serde_json::Value,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A scheduler cell: capacity, zone, what it runs (JSON lists), presence.
    CellRow in "sched_cells" key id {
        id: String,
        memory_mb: i64,
        disk_mb: i64,
        containers: i64,
        zone: String,
        stacks: serde_json::Value,
        supports_images: bool,
        placement_tags: serde_json::Value,
        state: String,
        last_heartbeat: String,
        version: i64,
    }
}

record! {
    /// A desired LRP; `definition` is the whole definition as JSON, `instances` is kept apart for queries.
    DesiredLrpRow in "desired_lrps" key process_guid {
        process_guid: String,
        app_guid: String,
        instances: i64,
        definition: serde_json::Value,
        created_at: String,
        updated_at: String,
        version: i64,
    }
}

record! {
    /// One LRP instance (Diego's ActualLRP); `ports` is a JSON array.
    ActualLrpRow in "actual_lrps" key instance_key {
        instance_key: String,
        process_guid: String,
        instance_index: i64,
        evacuating: bool,
        state: String,
        cell_id: Option<String>,
        instance_guid: Option<String>,
        address: Option<String>,
        ports: serde_json::Value,
        preferred_address: String,
        since: String,
        crash_count: i64,
        crash_reason: Option<String>,
        placement_error: Option<String>,
        version: i64,
    }
}

record! {
    /// A scheduler task; `definition` is JSON.
    TaskRow in "sched_tasks" key guid {
        guid: String,
        app_guid: String,
        definition: serde_json::Value,
        state: String,
        cell_id: Option<String>,
        failed: bool,
        failure_reason: Option<String>,
        result: Option<String>,
        created_at: String,
        updated_at: String,
        version: i64,
    }
}

record! {
    /// App source: `kind` is `bits` (a zip in the blobstore) or `docker` (`data` names the
    /// image and user name; the password is kept apart and never rendered).
    Package in "packages" key guid {
        guid: String,
        app_guid: String,
        kind: String,
        state: String,
        data: serde_json::Value,
        docker_password: Option<String>,
        blob_key: Option<String>,
        sha256: Option<String>,
        size_bytes: Option<i64>,
        error: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// What staging made: a droplet tarball in the blobstore, or (docker) the image and the
    /// run settings read from its config.
    Droplet in "droplets" key guid {
        guid: String,
        app_guid: String,
        package_guid: Option<String>,
        state: String,
        error: Option<String>,
        lifecycle: serde_json::Value,
        process_types: serde_json::Value,
        execution_metadata: String,
        buildpacks: serde_json::Value,
        stack: Option<String>,
        image: Option<String>,
        blob_key: Option<String>,
        sha256: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// One staging of a package.
    Build in "builds" key guid {
        guid: String,
        app_guid: String,
        package_guid: String,
        droplet_guid: Option<String>,
        state: String,
        error: Option<String>,
        lifecycle: serde_json::Value,
        staging_memory_in_mb: i64,
        staging_disk_in_mb: i64,
        staging_log_rate_limit_bytes_per_second: i64,
        created_by: serde_json::Value,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A route's destination: an app's process on a port.
    RouteMapping in "route_mappings" key guid {
        guid: String,
        route_guid: String,
        app_guid: String,
        process_type: String,
        app_port: i64,
        weight: Option<i64>,
        protocol: String,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A buildpack: a zip in the blobstore, tried in `position` order when an app names none.
    Buildpack in "buildpacks" key guid {
        guid: String,
        name: String,
        stack: Option<String>,
        position: i64,
        enabled: bool,
        locked: bool,
        state: String,
        filename: Option<String>,
        blob_key: Option<String>,
        sha256: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A Cloud Controller task (`cf run-task`): what it runs and where it is (PENDING,
    /// RUNNING, CANCELING, SUCCEEDED, FAILED); numbered per app by `sequence_id`.
    CcTask in "tasks" key guid {
        guid: String,
        app_guid: String,
        name: String,
        command: String,
        state: String,
        sequence_id: i64,
        memory_in_mb: i64,
        disk_in_mb: i64,
        log_rate_limit_in_bytes_per_second: i64,
        droplet_guid: String,
        failure_reason: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// A service instance; `kind` is `user-provided` (the only kind without a broker).
    /// `credentials` is a JSON object, `tags` a JSON array of strings.
    ServiceInstance in "service_instances" key guid {
        guid: String,
        name: String,
        kind: String,
        space_guid: String,
        credentials: serde_json::Value,
        tags: serde_json::Value,
        syslog_drain_url: Option<String>,
        route_service_url: Option<String>,
        created_at: String,
        updated_at: String,
    }
}

record! {
    /// An app credential binding: the app sees the instance's credentials in VCAP_SERVICES.
    ServiceBinding in "service_bindings" key guid {
        guid: String,
        name: Option<String>,
        app_guid: String,
        service_instance_guid: String,
        created_at: String,
        updated_at: String,
    }
}
