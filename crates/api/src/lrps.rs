//! From apps to desired LRPs (the Cloud Controller's "sync" with Diego): a started app
//! with a current droplet desires one LRP per process; a stopped or deleted app desires
//! none. Every change to what runs goes through [`sync_app`], which compares what should be
//! desired with what the scheduler has and changes only the difference.
//!
//! An LRP's guid is the process guid plus a version (`<process>-<version>`), as CF does: a
//! restart or a new droplet desires a new LRP and removes the old one, so the scheduler
//! replaces the instances instead of counting the old ones as the new ones. A scale
//! changes the instance count of the LRP in place.

use std::collections::BTreeMap;

use hearth_scheduler::{DesiredLrp, DesiredLrpUpdate, HealthCheck, HealthCheckType, ImageCredentials, RootFs};
use hearth_store::{self as store, App, Cond, Conn, Droplet, Org, Package, Process, Space, Value as SqlValue};
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};

/// The port an app listens on unless its image exposes others (CF's default).
pub const DEFAULT_PORT: u16 = 8080;

fn sched_err(e: hearth_scheduler::Error) -> ApiError {
    ApiError::Internal(format!("scheduler: {e}"))
}

/// The process an LRP runs: its guid without the version (`<process>-<version>`).
pub fn process_guid_of(lrp_guid: &str) -> &str {
    lrp_guid.rsplit_once('-').map_or(lrp_guid, |(process, _)| process)
}

/// The desired LRP that runs `process` now, if any (the newest version).
pub async fn current_lrp(state: &ApiState, process: &Process) -> ApiResult<Option<DesiredLrp>> {
    let prefix = format!("{}-", process.guid);
    let lrps = state.scheduler.desired_lrps_for_app(&process.app_guid).await.map_err(sched_err)?;
    Ok(lrps.into_iter().filter(|l| l.process_guid.starts_with(&prefix)).max_by_key(|l| l.version))
}

/// Brings the scheduler's desired LRPs for `app_guid` in line with the app. `restart`
/// replaces running instances even when nothing changed (`cf restart`).
pub async fn sync_app(state: &ApiState, app_guid: &str, restart: bool) -> ApiResult<()> {
    let mut conn = state.store.conn().await?;
    let wanted = desired_for(&mut conn, state, app_guid).await?;
    drop(conn);
    let existing = state.scheduler.desired_lrps_for_app(app_guid).await.map_err(sched_err)?;
    let mut keep = Vec::new();
    for want in wanted {
        let prefix = format!("{}-", want.process_guid);
        let current = existing.iter().filter(|l| l.process_guid.starts_with(&prefix)).max_by_key(|l| l.version);
        match current {
            Some(cur) if !restart && same_definition(cur, &want) => {
                if cur.instances != want.instances || cur.routes != want.routes {
                    let update = DesiredLrpUpdate {
                        instances: Some(want.instances),
                        routes: Some(want.routes.clone()),
                        ..DesiredLrpUpdate::default()
                    };
                    state
                        .scheduler
                        .update_desired_lrp(&cur.process_guid, &update, cur.version)
                        .await
                        .map_err(sched_err)?;
                }
                keep.push(cur.process_guid.clone());
            }
            _ => {
                let mut lrp = want;
                lrp.process_guid = format!("{prefix}{}", &store::new_guid()[..8]);
                keep.push(lrp.process_guid.clone());
                state.scheduler.desire_lrp(lrp).await.map_err(sched_err)?;
            }
        }
    }
    for old in existing.iter().filter(|l| !keep.contains(&l.process_guid)) {
        match state.scheduler.remove_desired_lrp(&old.process_guid).await {
            Ok(()) | Err(hearth_scheduler::Error::NotFound { .. }) => {}
            Err(e) => return Err(sched_err(e)),
        }
    }
    Ok(())
}

/// Equal but for the instance count, routes, version, guid and environment. As in CF, a
/// running app's environment (its env vars, bindings, `VCAP_APPLICATION`'s URIs) changes
/// only when it is restarted or restaged, never under it by a scale or a route change.
fn same_definition(a: &DesiredLrp, b: &DesiredLrp) -> bool {
    let mut a = a.clone();
    a.env = b.env.clone();
    a.instances = b.instances;
    a.routes = b.routes.clone();
    a.version = b.version;
    a.process_guid = b.process_guid.clone();
    a == *b
}

/// What should be desired for the app: nothing unless it is started with a staged droplet.
/// The guids are the bare process guids (versions are added when desired).
async fn desired_for(conn: &mut Conn, state: &ApiState, app_guid: &str) -> ApiResult<Vec<DesiredLrp>> {
    let app: Option<App> = store::get(conn, app_guid).await?;
    let Some(app) = app.filter(|a| a.state == "STARTED") else { return Ok(Vec::new()) };
    let Some(droplet_guid) = &app.droplet_guid else { return Ok(Vec::new()) };
    let droplet: Option<Droplet> = store::get(conn, droplet_guid).await?;
    let Some(droplet) = droplet.filter(|d| d.state == "STAGED") else { return Ok(Vec::new()) };
    let space: Option<Space> = store::get(conn, &app.space_guid).await?;
    let space = space.ok_or(ApiError::NotFound("Space"))?;
    let org: Option<Org> = store::get(conn, &space.org_guid).await?;
    let org = org.ok_or(ApiError::NotFound("Organization"))?;
    let processes: Vec<Process> =
        store::find_all(conn, vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))]).await?;
    let uris = super::resources::destinations::app_uris(conn, &app.guid).await?;
    let metadata: Value = serde_json::from_str(&droplet.execution_metadata).unwrap_or(Value::Null);
    let (rootfs, credentials, ports) = droplet_rootfs(conn, &droplet, &metadata).await?;
    let (vcap_services, database_url) = crate::services_env::for_app(conn, &app.guid).await?;
    let sidecars: Vec<hearth_store::Sidecar> =
        store::find_all(conn, vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))]).await?;
    let mut out = Vec::new();
    for p in processes {
        // An image runs its own entrypoint and cmd unless the process names a command.
        let detected = droplet.process_types[&p.process_type].as_str().filter(|_| droplet.image.is_none());
        let command = p.command.clone().or_else(|| detected.map(str::to_string)).unwrap_or_default();
        // A buildpack process needs a command; an image runs its own when none is given.
        if command.is_empty() && droplet.image.is_none() {
            continue;
        }
        let running = Running {
            app: &app,
            space: &space,
            org: &org,
            droplet: &droplet,
            uris: &uris,
            services: (&vcap_services, database_url.as_deref()),
        };
        let env = running.env(state, Some(&p), p.memory_in_mb, p.disk_in_mb);
        let web = p.process_type == "web";
        let beside: Vec<&str> = sidecars
            .iter()
            .filter(|s| crate::resources::sidecars::runs_beside(s, &p.process_type))
            .map(|s| s.command.as_str())
            .collect();
        out.push(DesiredLrp {
            process_guid: p.guid.clone(),
            app_guid: app.guid.clone(),
            instances: u32::try_from(p.instances.max(0)).unwrap_or(0),
            memory_mb: u64::try_from(p.memory_in_mb.max(1)).unwrap_or(1),
            disk_mb: u64::try_from(p.disk_in_mb.max(1)).unwrap_or(1),
            max_pids: 1024,
            rootfs: rootfs.clone(),
            image_credentials: credentials.clone(),
            droplet: metadata["layer"].as_str().filter(|_| droplet.image.is_none()).map(str::to_string),
            start_command: match (&droplet.image, beside.is_empty()) {
                (None, _) => launcher(&command, &beside),
                (Some(_), true) => command,
                // An image's own entrypoint cannot be combined with sidecars: they run
                // beside a command the process names.
                (Some(_), false) if command.is_empty() => command,
                (Some(_), false) => with_sidecars(&command, &beside),
            },
            env,
            ports: ports.clone(),
            health_check: health_check(&p.health_check, web),
            routes: if web { uris.clone() } else { Vec::new() },
            log_source_id: app.guid.clone(),
            metric_tags: {
                let mut tags = running.tags();
                tags.insert("process_type".to_string(), p.process_type.clone());
                tags.insert("process_id".to_string(), p.guid.clone());
                tags
            },
            placement_tags: Default::default(),
            version: 0,
        });
    }
    Ok(out)
}

/// What an app runs from: enough to make its processes' and tasks' environment.
struct Running<'a> {
    app: &'a App,
    space: &'a Space,
    org: &'a Org,
    /// `VCAP_SERVICES` and the `DATABASE_URL` taken from it, if any.
    services: (&'a Value, Option<&'a str>),
    droplet: &'a Droplet,
    uris: &'a [String],
}

impl Running<'_> {
    /// CF's environment: `VCAP_APPLICATION`, `VCAP_SERVICES`, `MEMORY_LIMIT`, the app's
    /// variables (a process's also names the process).
    fn env(
        &self,
        state: &ApiState,
        process: Option<&Process>,
        memory_mb: i64,
        disk_mb: i64,
    ) -> BTreeMap<String, String> {
        let (app, space, org, droplet, uris) = (self.app, self.space, self.org, self.droplet, self.uris);
        let mut vcap_application = json!({
            "application_id": app.guid, "application_name": app.name, "name": app.name,
            "application_uris": uris, "uris": uris, "space_id": space.guid, "space_name": space.name,
            "organization_id": org.guid, "organization_name": org.name,
            "application_version": droplet.guid, "version": droplet.guid,
            "cf_api": state.config.external_url,
            "limits": {"mem": memory_mb, "disk": disk_mb, "fds": 16384}, "users": null,
        });
        if let Some(p) = process {
            vcap_application["process_id"] = json!(p.guid);
            vcap_application["process_type"] = json!(p.process_type);
        }
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("VCAP_APPLICATION".into(), vcap_application.to_string());
        env.insert("VCAP_SERVICES".into(), self.services.0.to_string());
        if let Some(url) = self.services.1 {
            env.insert("DATABASE_URL".into(), url.to_string());
        }
        env.insert("MEMORY_LIMIT".into(), format!("{memory_mb}m"));
        if droplet.image.is_none() {
            env.insert("DEPS_DIR".into(), "/home/vcap/deps".into());
        }
        if let Some(vars) = app.environment_variables.as_object() {
            for (k, v) in vars {
                env.insert(k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            }
        }
        env
    }

    /// The tags on its log lines.
    fn tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app_id".to_string(), self.app.guid.clone()),
            ("app_name".to_string(), self.app.name.clone()),
            ("space_id".to_string(), self.space.guid.clone()),
            ("organization_id".to_string(), self.org.guid.clone()),
        ])
    }
}

/// The root filesystem a droplet runs on (its image pinned to its digest, or its stack),
/// the image's credentials and its ports.
async fn droplet_rootfs(
    conn: &mut Conn,
    droplet: &Droplet,
    metadata: &Value,
) -> ApiResult<(RootFs, Option<ImageCredentials>, Vec<u16>)> {
    Ok(match &droplet.image {
        Some(image) => {
            let pinned = metadata["digest"].as_str().map(|d| pin(image, d)).unwrap_or_else(|| image.clone());
            let credentials = docker_credentials(conn, droplet).await?;
            let mut ports: Vec<u16> = metadata["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["Port"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect();
            if ports.is_empty() {
                ports.push(DEFAULT_PORT);
            }
            (RootFs::Image(pinned), credentials, ports)
        }
        None => (RootFs::Stack(droplet.stack.clone().unwrap_or_else(|| "cflinuxfs4".into())), None, vec![DEFAULT_PORT]),
    })
}

/// What a task asks for (`cf run-task`).
pub struct TaskSpec<'a> {
    pub name: &'a str,
    pub command: &'a str,
    pub memory_mb: i64,
    pub disk_mb: i64,
}

/// The scheduler's definition of a task of `app` run from `droplet`: the droplet's root
/// filesystem and layer, the app's environment as its processes get it, the command in
/// CF's launcher (a buildpack droplet), output as `APP/TASK/<name>`.
pub async fn task_definition(
    conn: &mut Conn,
    state: &ApiState,
    app: &App,
    droplet: &Droplet,
    spec: &TaskSpec<'_>,
) -> ApiResult<hearth_scheduler::TaskDefinition> {
    let space: Option<Space> = store::get(conn, &app.space_guid).await?;
    let space = space.ok_or(ApiError::NotFound("Space"))?;
    let org: Option<Org> = store::get(conn, &space.org_guid).await?;
    let org = org.ok_or(ApiError::NotFound("Organization"))?;
    let uris = super::resources::destinations::app_uris(conn, &app.guid).await?;
    let metadata: Value = serde_json::from_str(&droplet.execution_metadata).unwrap_or(Value::Null);
    let (rootfs, _, _) = droplet_rootfs(conn, droplet, &metadata).await?;
    let (vcap_services, database_url) = crate::services_env::for_app(conn, &app.guid).await?;
    let services = (&vcap_services, database_url.as_deref());
    let running = Running { app, space: &space, org: &org, droplet, uris: &uris, services };
    let docker = droplet.image.is_some();
    Ok(hearth_scheduler::TaskDefinition {
        app_guid: app.guid.clone(),
        memory_mb: u64::try_from(spec.memory_mb.max(1)).unwrap_or(1),
        disk_mb: u64::try_from(spec.disk_mb.max(1)).unwrap_or(1),
        max_pids: 1024,
        rootfs,
        droplet: metadata["layer"].as_str().filter(|_| !docker).map(str::to_string),
        command: if docker { spec.command.to_string() } else { launcher(spec.command, &[]) },
        env: running.env(state, None, spec.memory_mb, spec.disk_mb),
        log_source_id: app.guid.clone(),
        log_source: format!("APP/TASK/{}", spec.name),
        metric_tags: running.tags(),
        placement_tags: Default::default(),
        completion_callback_url: None,
        kind: hearth_scheduler::TaskKind::Command,
    })
}

/// A buildpack app's start: in its directory, with the buildpacks' and the app's
/// `.profile.d` scripts and `.profile` sourced first, as CF's launcher does; the process's
/// sidecars start first, in the background, with the same environment.
fn launcher(command: &str, sidecars: &[&str]) -> String {
    let command = with_sidecars(command, sidecars);
    format!(
        "cd /home/vcap/app && mkdir -p /home/vcap/tmp && for f in /home/vcap/profile.d/*.sh /home/vcap/app/.profile.d/*.sh; \
         do [ -f \"$f\" ] && . \"$f\"; done; [ -f /home/vcap/app/.profile ] && . /home/vcap/app/.profile; \
         {command}"
    )
}

/// `command` with each sidecar started before it in the background (in one container,
/// the container's init stops them all together).
fn with_sidecars(command: &str, sidecars: &[&str]) -> String {
    let started: String = sidecars.iter().map(|s| format!("( {s}\n) & ")).collect();
    format!("{started}{command}")
}

/// `registry/repo:tag` + digest → `registry/repo@digest`.
fn pin(image: &str, digest: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let name = match name[last_slash..].rfind(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    format!("{name}@{digest}")
}

async fn docker_credentials(conn: &mut Conn, droplet: &Droplet) -> ApiResult<Option<ImageCredentials>> {
    let Some(package_guid) = &droplet.package_guid else { return Ok(None) };
    let package: Option<Package> = store::get(conn, package_guid).await?;
    Ok(package.and_then(|p| {
        let username = p.data["username"].as_str().filter(|u| !u.is_empty())?.to_string();
        Some(ImageCredentials { username, password: p.docker_password.unwrap_or_default() })
    }))
}

/// CF's process health check (`{"type", "data": {"timeout", "invocation_timeout", "endpoint"}}`)
/// as the scheduler runs it. `none` is `process`.
fn health_check(hc: &Value, web: bool) -> HealthCheck {
    let kind = match hc["type"].as_str() {
        Some("http") => HealthCheckType::Http,
        Some("port") => HealthCheckType::Port,
        Some("process" | "none") => HealthCheckType::Process,
        _ if web => HealthCheckType::Port,
        _ => HealthCheckType::Process,
    };
    let data = &hc["data"];
    let start = data["timeout"].as_u64().map(|t| t.clamp(1, 180) as u32).unwrap_or(60);
    let invocation = data["invocation_timeout"].as_u64().map(|t| t.clamp(1, 60) as u32).unwrap_or(1);
    HealthCheck {
        kind,
        endpoint: (kind == HealthCheckType::Http).then(|| data["endpoint"].as_str().unwrap_or("/").to_string()),
        start_timeout_secs: start,
        invocation_timeout_secs: invocation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lrp_names_its_process() {
        assert_eq!(
            process_guid_of("6f1c2d3e-aaaa-bbbb-cccc-0123456789ab-1a2b3c4d"),
            "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
        );
    }

    #[test]
    fn an_image_is_pinned_to_its_digest() {
        let d = "sha256:abc";
        assert_eq!(pin("localhost:5000/app:v1", d), "localhost:5000/app@sha256:abc");
        assert_eq!(pin("localhost:5000/app", d), "localhost:5000/app@sha256:abc");
        assert_eq!(pin("busybox", d), "busybox@sha256:abc");
        assert_eq!(pin("r.example/a/b@sha256:old", d), "r.example/a/b@sha256:abc");
    }

    #[test]
    fn sidecars_start_in_the_background_before_the_command_runs() {
        assert_eq!(with_sidecars("./web", &[]), "./web");
        assert_eq!(with_sidecars("./web", &["./a # note", "./b"]), "( ./a # note\n) & ( ./b\n) & ./web");
        let started = launcher("./web", &["./side"]);
        assert!(started.starts_with("cd /home/vcap/app && "), "{started}");
        assert!(started.ends_with(". /home/vcap/app/.profile; ( ./side\n) & ./web"), "after the profile: {started}");
    }

    #[test]
    fn health_checks_map_as_cf_defines_them() {
        let hc = health_check(&json!({"type": "http", "data": {"timeout": 500, "endpoint": "/up"}}), true);
        assert_eq!((hc.kind, hc.endpoint.as_deref(), hc.start_timeout_secs), (HealthCheckType::Http, Some("/up"), 180));
        assert_eq!(health_check(&json!({"type": "none"}), true).kind, HealthCheckType::Process);
        assert_eq!(health_check(&json!({}), false).kind, HealthCheckType::Process);
        assert_eq!(health_check(&json!({"type": "port", "data": {"timeout": null}}), true).start_timeout_secs, 60);
    }
}
