//! The CF app manifest (YAML) as `apply_manifest` reads it: every application's keys
//! checked and normalised (sizes in CF's units, health checks, routes, processes) before
//! anything is applied. Unknown keys are ignored, as the Cloud Controller does (the cf
//! CLI sends its own, like `path`).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The most applications one manifest may name.
const MAX_APPS: usize = 100;

/// One application of a manifest, checked.
#[derive(Debug, Default)]
pub(super) struct AppSpec {
    pub(super) name: String,
    pub(super) docker_image: Option<String>,
    pub(super) buildpacks: Option<Vec<String>>,
    pub(super) stack: Option<String>,
    pub(super) env: Map<String, Value>,
    pub(super) routes: Option<Vec<String>>,
    pub(super) default_route: bool,
    pub(super) random_route: bool,
    pub(super) no_route: bool,
    /// `web` from the app's own keys first, then `processes` entries.
    pub(super) processes: Vec<ProcessSpec>,
    /// `sidecars` entries, each by name (created or updated; others are left alone).
    pub(super) sidecars: Vec<super::sidecars::SidecarChange>,
    /// Service instances (of the app's space) to bind, by name.
    pub(super) services: Vec<ServiceSpec>,
}

/// One entry of `services`: a name, or `{name, binding_name, parameters}`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ServiceSpec {
    pub(super) name: String,
    pub(super) binding_name: Option<String>,
    /// Binding parameters were given (only a broker could take them).
    pub(super) parameters: bool,
}

fn services(obj: &Map<String, Value>, app: &str) -> ApiResult<Vec<ServiceSpec>> {
    let shape = || bad(app, "Services must be a list of service instance names or mappings with a 'name'");
    let list = match obj.get("services") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(shape()),
    };
    let mut out = Vec::new();
    for entry in list {
        let spec = match entry {
            Value::String(name) => ServiceSpec { name: name.clone(), ..ServiceSpec::default() },
            Value::Object(o) => {
                let name = match o.get("name") {
                    Some(Value::String(n)) => n.clone(),
                    _ => return Err(shape()),
                };
                let binding_name = match o.get("binding_name") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(n)) => Some(n.clone()),
                    Some(_) => return Err(bad(app, "Binding name must be a string")),
                };
                let parameters = match o.get("parameters") {
                    None | Some(Value::Null) => false,
                    Some(Value::Object(p)) => !p.is_empty(),
                    Some(_) => return Err(bad(app, "Parameters must be an object")),
                };
                ServiceSpec { name, binding_name, parameters }
            }
            _ => return Err(shape()),
        };
        if spec.name.is_empty() {
            return Err(shape());
        }
        out.push(spec);
    }
    Ok(out)
}

#[derive(Debug, Default, Clone)]
pub(super) struct ProcessSpec {
    pub(super) kind: String,
    pub(super) command: Option<Option<String>>,
    pub(super) instances: Option<i64>,
    pub(super) memory_mb: Option<i64>,
    pub(super) disk_mb: Option<i64>,
    pub(super) log_rate: Option<i64>,
    pub(super) health_check_type: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) timeout: Option<i64>,
    pub(super) invocation_timeout: Option<i64>,
}

pub(super) fn bad(app: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("For application '{app}': {why}"))
}

/// `1G`, `512M`, `1024MB`, `2048K`, `1T` → megabytes (CF's units; a bare number is refused).
pub fn megabytes(v: &Value) -> Result<i64, String> {
    let text = match v {
        Value::String(s) => s.trim().to_ascii_uppercase(),
        Value::Number(n) => n.to_string(),
        _ => return Err("must be a string with a unit".into()),
    };
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("'{text}' is not a size"))?;
    let factor = match unit.trim() {
        "T" | "TB" => 1024.0 * 1024.0,
        "G" | "GB" => 1024.0,
        "M" | "MB" => 1.0,
        "K" | "KB" => 1.0 / 1024.0,
        "B" => 1.0 / (1024.0 * 1024.0),
        _ => return Err("must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB".into()),
    };
    let mb = (n * factor).round();
    if !(1.0..=(1u64 << 40) as f64).contains(&mb) {
        return Err(format!("'{text}' must be greater than 0MB"));
    }
    Ok(mb as i64)
}

/// `1K`, `10MB`, `-1` (unlimited) → bytes per second.
fn log_rate(v: &Value) -> Result<i64, String> {
    if v.as_i64() == Some(-1) || v.as_str() == Some("-1") {
        return Ok(-1);
    }
    let mb = megabytes(v).or_else(|_| {
        // Below a megabyte: count in kilobytes and bytes directly.
        let text = v.as_str().unwrap_or_default().trim().to_ascii_uppercase();
        let (n, f) = if let Some(k) = text.strip_suffix("KB").or(text.strip_suffix('K')) {
            (k, 1024)
        } else if let Some(b) = text.strip_suffix('B') {
            (b, 1)
        } else {
            return Err("must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB".to_string());
        };
        n.trim().parse::<i64>().map(|n| -(n * f)).map_err(|_| format!("'{text}' is not a size"))
    })?;
    Ok(if mb < 0 { -mb } else { mb * 1024 * 1024 })
}

fn opt_str(obj: &Map<String, Value>, key: &str, app: &str) -> ApiResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(app, format!("{key} must be a string"))),
    }
}

fn opt_int(obj: &Map<String, Value>, key: &str, app: &str) -> ApiResult<Option<i64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| bad(app, format!("{key} must be an integer"))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, app: &str) -> ApiResult<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(_) => Err(bad(app, format!("{key} must be a boolean"))),
    }
}

fn process_spec(obj: &Map<String, Value>, kind: &str, app: &str) -> ApiResult<ProcessSpec> {
    let size = |key: &str| -> ApiResult<Option<i64>> {
        obj.get(key)
            .filter(|v| !v.is_null())
            .map(|v| megabytes(v).map_err(|e| bad(app, format!("{key} {e}"))))
            .transpose()
    };
    let instances = opt_int(obj, "instances", app)?;
    if instances.is_some_and(|n| !(0..=2000).contains(&n)) {
        return Err(bad(app, "Instances must be greater than or equal to 0"));
    }
    let health_check_type = opt_str(obj, "health-check-type", app)?;
    if let Some(t) = &health_check_type
        && !["port", "process", "http", "none"].contains(&t.as_str())
    {
        return Err(bad(app, "Health check type must be \"port\", \"process\", or \"http\""));
    }
    let endpoint = opt_str(obj, "health-check-http-endpoint", app)?;
    if endpoint.as_ref().is_some_and(|e| !e.starts_with('/')) {
        return Err(bad(app, "Health check http endpoint must be a valid URI path"));
    }
    let timeout = opt_int(obj, "timeout", app)?;
    if timeout.is_some_and(|t| !(1..=180).contains(&t)) {
        return Err(bad(app, "Timeout must be between 1 and 180 seconds"));
    }
    let invocation_timeout = opt_int(obj, "health-check-invocation-timeout", app)?;
    if invocation_timeout.is_some_and(|t| t < 1) {
        return Err(bad(app, "Health check invocation timeout must be greater than or equal to 1"));
    }
    let command = match obj.get("command") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.is_empty() || s == "default" || s == "null" => Some(None),
        Some(Value::String(s)) if s.len() <= 4096 => Some(Some(s.clone())),
        Some(_) => return Err(bad(app, "Command must be between 1 and 4096 characters")),
    };
    let log_rate = obj
        .get("log-rate-limit-per-second")
        .filter(|v| !v.is_null())
        .map(|v| log_rate(v).map_err(|e| bad(app, format!("log-rate-limit-per-second {e}"))))
        .transpose()?;
    Ok(ProcessSpec {
        kind: kind.into(),
        command,
        instances,
        memory_mb: size("memory")?,
        disk_mb: size("disk_quota")?.or(size("disk-quota")?),
        log_rate,
        health_check_type,
        endpoint,
        timeout,
        invocation_timeout,
    })
}

fn parse_app(v: &Value) -> ApiResult<AppSpec> {
    let Value::Object(obj) = v else {
        return Err(ApiError::Unprocessable("Each application must be a mapping".into()));
    };
    let name = match obj.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => return Err(ApiError::Unprocessable("Name must not be empty".into())),
    };
    super::check_name(&name).map_err(|e| bad(&name, e))?;
    let app_name = name.clone();
    let app = app_name.as_str();
    let docker_image = match obj.get("docker") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => Some(
            opt_str(d, "image", app)?
                .filter(|i| !i.is_empty())
                .ok_or_else(|| bad(app, "Docker image must be given"))?,
        ),
        Some(_) => return Err(bad(app, "docker must be a mapping with an image")),
    };
    let mut buildpacks = match obj.get("buildpacks") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|b| b.as_str().map(str::to_string).ok_or_else(|| bad(app, "Buildpacks must be strings")))
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(bad(app, "Buildpacks must be a list of strings")),
    };
    if let Some(b) = opt_str(obj, "buildpack", app)? {
        buildpacks.get_or_insert_with(Vec::new).push(b);
    }
    if docker_image.is_some() && buildpacks.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(bad(app, "Buildpacks cannot be configured for a docker lifecycle app."));
    }
    let env = match obj.get("env") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            let mut out = Map::new();
            for (k, v) in m {
                if k.starts_with("VCAP_") || k == "PORT" || k.is_empty() {
                    return Err(bad(app, format!("env cannot set {k}")));
                }
                let v = match v {
                    Value::String(s) => Value::String(s.clone()),
                    Value::Null => Value::String(String::new()),
                    Value::Bool(_) | Value::Number(_) => Value::String(v.to_string()),
                    _ => Value::String(v.to_string()),
                };
                out.insert(k.clone(), v);
            }
            out
        }
        Some(_) => return Err(bad(app, "env must be a mapping")),
    };
    let routes = match obj.get("routes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|r| match r.get("route") {
                    Some(Value::String(s)) if !s.is_empty() => Ok(s.to_ascii_lowercase()),
                    _ => Err(bad(app, "Routes must be a list of mappings with a route")),
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(bad(app, "Routes must be a list")),
    };
    let no_route = opt_bool(obj, "no-route", app)?;
    if no_route && routes.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(bad(app, "Cannot use the combination of properties 'no-route' and 'routes'"));
    }
    let mut processes = vec![process_spec(obj, "web", app)?];
    if let Some(list) = obj.get("processes").filter(|v| !v.is_null()) {
        let Value::Array(list) = list else { return Err(bad(app, "Processes must be a list")) };
        for p in list {
            let Value::Object(po) = p else { return Err(bad(app, "Each process must be a mapping")) };
            let kind = opt_str(po, "type", app)?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad(app, "Type must not be empty"))?;
            let spec = process_spec(po, &kind, app)?;
            match processes.iter_mut().find(|s| s.kind == kind) {
                Some(existing) => *existing = merge(existing.clone(), spec),
                None => processes.push(spec),
            }
        }
    }
    let sidecars = sidecar_specs(obj.get("sidecars"), app)?;
    let services = services(obj, app)?;
    Ok(AppSpec {
        name,
        docker_image,
        buildpacks,
        stack: opt_str(obj, "stack", app)?,
        env,
        routes,
        default_route: opt_bool(obj, "default-route", app)?,
        random_route: opt_bool(obj, "random-route", app)?,
        no_route,
        processes,
        sidecars,
        services,
    })
}

/// A manifest's `sidecars`: `name`, `command` and `process_types` each required, `memory`
/// in CF's units.
fn sidecar_specs(list: Option<&Value>, app: &str) -> ApiResult<Vec<super::sidecars::SidecarChange>> {
    let Some(list) = list.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let Value::Array(list) = list else { return Err(bad(app, "Sidecars must be a list")) };
    let mut out: Vec<super::sidecars::SidecarChange> = Vec::new();
    for entry in list {
        let Value::Object(o) = entry else { return Err(bad(app, "Each sidecar must be a mapping")) };
        let mut body = Map::new();
        for key in ["name", "command", "process_types"] {
            if let Some(v) = o.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
        if let Some(memory) = o.get("memory").filter(|v| !v.is_null()) {
            let mb = megabytes(memory).map_err(|e| bad(app, format!("Sidecar memory {e}")))?;
            body.insert("memory_in_mb".into(), Value::from(mb));
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
        let change = super::sidecars::SidecarChange::parse(&bytes, true).map_err(|e| match e {
            ApiError::Unprocessable(why) => bad(app, format!("Sidecar {why}")),
            other => other,
        })?;
        if out.iter().any(|s| s.name == change.name) {
            return Err(bad(app, format!("Sidecar '{}' is named twice", change.name.unwrap_or_default())));
        }
        out.push(change);
    }
    Ok(out)
}

/// `later`'s values over `earlier`'s.
fn merge(earlier: ProcessSpec, later: ProcessSpec) -> ProcessSpec {
    ProcessSpec {
        kind: later.kind,
        command: later.command.or(earlier.command),
        instances: later.instances.or(earlier.instances),
        memory_mb: later.memory_mb.or(earlier.memory_mb),
        disk_mb: later.disk_mb.or(earlier.disk_mb),
        log_rate: later.log_rate.or(earlier.log_rate),
        health_check_type: later.health_check_type.or(earlier.health_check_type),
        endpoint: later.endpoint.or(earlier.endpoint),
        timeout: later.timeout.or(earlier.timeout),
        invocation_timeout: later.invocation_timeout.or(earlier.invocation_timeout),
    }
}

pub(super) fn parse(bytes: &[u8]) -> ApiResult<Vec<AppSpec>> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::MessageParse("the manifest is not UTF-8".into()))?;
    let doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ApiError::MessageParse(format!("the manifest is not valid YAML: {e}")))?;
    let apps = match doc.get("applications") {
        Some(Value::Array(apps)) if !apps.is_empty() => apps,
        _ => return Err(ApiError::Unprocessable("Manifest must contain at least one application".into())),
    };
    if apps.len() > MAX_APPS {
        return Err(ApiError::Unprocessable(format!("Manifest may name at most {MAX_APPS} applications")));
    }
    let specs = apps.iter().map(parse_app).collect::<ApiResult<Vec<_>>>()?;
    let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::Unprocessable("Application names in a manifest must be unique".into()));
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_take_cf_s_units() {
        assert_eq!(megabytes(&json!("1G")), Ok(1024));
        assert_eq!(megabytes(&json!("512M")), Ok(512));
        assert_eq!(megabytes(&json!("256mb")), Ok(256));
        assert_eq!(megabytes(&json!("2048K")), Ok(2));
        assert!(megabytes(&json!("512")).is_err());
        assert!(megabytes(&json!("0M")).is_err());
        assert!(megabytes(&json!("lots")).is_err());
        assert_eq!(log_rate(&json!("1K")), Ok(1024));
        assert_eq!(log_rate(&json!(-1)), Ok(-1));
        assert_eq!(log_rate(&json!("2M")), Ok(2 << 20));
    }

    #[test]
    fn services_are_names_or_mappings() {
        let y = b"applications:\n- name: a\n  services: [db, {name: q, binding_name: b, parameters: {k: v}}]\n";
        let s = &parse(y).unwrap()[0].services;
        assert_eq!(s[0], ServiceSpec { name: "db".into(), ..ServiceSpec::default() });
        assert_eq!(s[1], ServiceSpec { name: "q".into(), binding_name: Some("b".into()), parameters: true });
    }

    #[test]
    fn a_manifest_is_checked_before_anything_is_applied() {
        let ok =
            parse(b"applications:\n- name: web\n  docker: {image: busybox}\n  instances: 2\n  memory: 64M\n").unwrap();
        assert_eq!(ok[0].docker_image.as_deref(), Some("busybox"));
        assert_eq!((ok[0].processes[0].instances, ok[0].processes[0].memory_mb), (Some(2), Some(64)));
        for (yaml, why) in [
            ("applications: [", "YAML"),
            ("applications: []", "at least one"),
            ("applications:\n- name: a\n  memory: 12\n", "unit"),
            ("applications:\n- name: a\n  instances: -3\n", "Instances"),
            ("applications:\n- name: a\n  health-check-type: tcp\n", "Health check type"),
            ("applications:\n- name: a\n- name: a\n", "unique"),
            ("applications:\n- name: a\n  no-route: true\n  routes: [{route: a.b.c}]\n", "no-route"),
            ("applications:\n- name: a\n  env: {VCAP_SERVICES: x}\n", "VCAP_SERVICES"),
            ("applications:\n- name: a\n  services: db\n", "Services must be a list"),
            ("applications:\n- name: a\n  services: [{binding_name: x}]\n", "Services must be a list"),
            ("applications:\n- name: a\n  services: [{name: db, parameters: 3}]\n", "Parameters"),
        ] {
            let e = parse(yaml.as_bytes()).unwrap_err();
            assert!(format!("{e:?}").contains(why), "{yaml}: {e:?}");
        }
    }
}
