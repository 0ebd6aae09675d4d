//! The manifest `hearth push` sends: read from `-f` (or `./manifest.yml`), `((var))`
//! interpolation from `--var`/`--vars-file`, command-line flags folded in as cf v8 does,
//! or generated from flags alone. Pure: no I/O beyond what the caller hands in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use serde_yaml_ng::{Mapping, Value};

/// What the command line asks to change in the manifest (cf's "overrides").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub path: Option<PathBuf>,
    pub buildpacks: Vec<String>,
    pub command: Option<String>,
    pub instances: Option<u32>,
    pub memory: Option<String>,
    pub disk: Option<String>,
    pub stack: Option<String>,
    pub health_check_type: Option<String>,
    pub endpoint: Option<String>,
    pub timeout: Option<u32>,
    pub docker_image: Option<String>,
    pub docker_username: Option<String>,
    /// `--hostname`: the route's host (default: the app's name when `-d` is given).
    pub hostname: Option<String>,
    /// `-d`: the route's domain (default: the org's default domain).
    pub domain: Option<String>,
    pub no_route: bool,
    pub random_route: bool,
}

impl Overrides {
    /// True when any flag that changes an app is given (these are refused for a
    /// multi-app manifest without an app name).
    pub fn any(&self) -> bool {
        *self != Overrides::default()
    }
}

/// One app of the final manifest, as push needs it locally.
#[derive(Debug, Clone, PartialEq)]
pub struct AppPlan {
    pub name: String,
    pub docker_image: Option<String>,
    pub docker_username: Option<String>,
    /// The local directory or zip of the app's bits (absolute).
    pub path: PathBuf,
}

/// The manifest to apply and the apps to push, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub yaml: String,
    pub apps: Vec<AppPlan>,
}

/// The flag combinations cf refuses, checked before anything is sent.
pub fn validate_flags(o: &Overrides, no_start: bool, no_wait: bool) -> Result<()> {
    if o.docker_image.is_some() {
        for (given, flag) in [(!o.buildpacks.is_empty(), "-b"), (o.path.is_some(), "-p"), (o.stack.is_some(), "-s")] {
            if given {
                bail!("Incorrect Usage: The following arguments cannot be used together: --docker-image, -o, {flag}");
            }
        }
    }
    if o.docker_username.is_some() && o.docker_image.is_none() {
        bail!("Incorrect Usage: '--docker-image, -o' and '--docker-username' must be used together.");
    }
    if let Some(kind) = &o.health_check_type {
        if !matches!(kind.as_str(), "port" | "process" | "http" | "none") {
            bail!("Incorrect Usage: invalid health check type '{kind}': use port, process or http.");
        }
        if o.endpoint.is_some() && kind != "http" {
            bail!(
                "Incorrect Usage: The following arguments cannot be used together: --endpoint, --health-check-type={kind}"
            );
        }
    }
    if no_start && no_wait {
        bail!("Incorrect Usage: The following arguments cannot be used together: --no-start, --no-wait");
    }
    if o.no_route && o.random_route {
        bail!("Incorrect Usage: The following arguments cannot be used together: --no-route, --random-route");
    }
    if o.no_route && (o.hostname.is_some() || o.domain.is_some()) {
        bail!("Incorrect Usage: The following arguments cannot be used together: --no-route, --hostname/-d");
    }
    for quantity in [&o.memory, &o.disk].into_iter().flatten() {
        normalize_quantity(quantity)?;
    }
    Ok(())
}

/// `256m` → `256M`, `1gb` → `1G`; a number without a unit is refused as cf does.
pub fn normalize_quantity(input: &str) -> Result<String> {
    let upper = input.trim().to_ascii_uppercase();
    let digits: String = upper.chars().take_while(char::is_ascii_digit).collect();
    let unit = &upper[digits.len()..];
    let unit = match unit {
        "M" | "MB" => "M",
        "G" | "GB" => "G",
        _ => "",
    };
    if digits.is_empty() || unit.is_empty() || digits.parse::<u64>().map_or(true, |n| n == 0) {
        bail!(
            "Invalid value '{input}': byte quantity must be a positive integer with a unit of measurement like M, MB, G, or GB"
        );
    }
    Ok(format!("{digits}{unit}"))
}

/// Parses `--var k=v` flags and `--vars-file` contents (later wins; `--var` over files).
pub fn collect_vars(var_flags: &[String], vars_files: &[(PathBuf, String)]) -> Result<BTreeMap<String, Value>> {
    let mut vars = BTreeMap::new();
    for (path, text) in vars_files {
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| anyhow!("The vars file {} is not valid YAML: {e}", path.display()))?;
        let Value::Mapping(map) = doc else {
            bail!("The vars file {} must hold a YAML mapping of names to values.", path.display());
        };
        for (key, value) in map {
            let Value::String(key) = key else {
                bail!("The vars file {} has a name that is not a string.", path.display())
            };
            vars.insert(key, value);
        }
    }
    for flag in var_flags {
        let Some((key, value)) = flag.split_once('=') else {
            bail!("Invalid --var '{flag}': use --var NAME=VALUE.");
        };
        if key.is_empty() {
            bail!("Invalid --var '{flag}': the name is empty.");
        }
        vars.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(vars)
}

/// Replaces every `((name))` in the manifest's values; names with no value are an error.
pub fn interpolate(doc: &mut Value, vars: &BTreeMap<String, Value>) -> Result<()> {
    let mut missing = Vec::new();
    substitute(doc, vars, &mut missing);
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        bail!("Expected to find variables: {}", missing.join(", "));
    }
    Ok(())
}

fn substitute(value: &mut Value, vars: &BTreeMap<String, Value>, missing: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            if let Some(name) = whole_var(text) {
                match vars.get(name) {
                    Some(v) => *value = v.clone(),
                    None => missing.push(name.to_owned()),
                }
                return;
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("((") {
                let Some(len) = rest[start + 2..].find("))") else { break };
                let name = &rest[start + 2..start + 2 + len];
                out.push_str(&rest[..start]);
                match vars.get(name) {
                    Some(v) => out.push_str(&scalar_text(v)),
                    None => {
                        missing.push(name.to_owned());
                        out.push_str(&rest[start..start + 4 + len]);
                    }
                }
                rest = &rest[start + 4 + len..];
            }
            out.push_str(rest);
            *text = out;
        }
        Value::Sequence(items) => items.iter_mut().for_each(|v| substitute(v, vars, missing)),
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| substitute(v, vars, missing)),
        Value::Tagged(tagged) => substitute(&mut tagged.value, vars, missing),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn whole_var(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("((")?.strip_suffix("))")?;
    (!inner.contains("((") && !inner.contains("))")).then_some(inner)
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim_end().to_owned(),
    }
}

/// Reads a manifest file's text into the app list, or says why it cannot be used.
pub fn parse(text: &str, vars: &BTreeMap<String, Value>) -> Result<Value> {
    let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| anyhow!("The manifest is not valid YAML: {e}"))?;
    interpolate(&mut doc, vars)?;
    let apps = doc.get("applications").and_then(Value::as_sequence);
    match apps {
        Some(apps) if !apps.is_empty() => {}
        _ => bail!("The manifest has no applications: it needs 'applications:' with at least one '- name: APP'."),
    }
    for (i, app) in apps.into_iter().flatten().enumerate() {
        if app.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            bail!("Application {} in the manifest has no name: every application needs 'name: APP'.", i + 1);
        }
    }
    Ok(doc)
}

/// Builds the final manifest: the file's apps (or `[{name}]` without a file), the ones
/// selected by `name`, with `overrides` folded in. `base_dir` resolves relative `path`s;
/// `default_domain` completes `--hostname` without `-d`.
pub fn plan(
    file: Option<Value>,
    name: Option<&str>,
    o: &Overrides,
    base_dir: &Path,
    default_domain: Option<&str>,
) -> Result<Plan> {
    let mut doc = match file {
        Some(doc) => doc,
        None => {
            let Some(name) = name else {
                bail!(
                    "Incorrect Usage: the push command requires an app name. The app name can be supplied as an argument or with a manifest.yml file."
                );
            };
            let mut app = Mapping::new();
            app.insert("name".into(), name.into());
            let mut doc = Mapping::new();
            doc.insert("applications".into(), Value::Sequence(vec![Value::Mapping(app)]));
            Value::Mapping(doc)
        }
    };
    let apps =
        doc.get_mut("applications").and_then(Value::as_sequence_mut).ok_or_else(|| anyhow!("no applications"))?;
    if let Some(name) = name {
        apps.retain(|a| a.get("name").and_then(Value::as_str) == Some(name));
        if apps.is_empty() {
            bail!("Could not find app named '{name}' in manifest.");
        }
    } else if apps.len() > 1 && o.any() {
        bail!(
            "Incorrect Usage: Command line flags (except -f, --var, --vars-file and --no-start) cannot be applied when pushing multiple apps from a manifest file."
        );
    }
    let mut plans = Vec::new();
    for app in apps.iter_mut() {
        let Value::Mapping(app) = app else { bail!("Every application in the manifest must be a mapping.") };
        apply_overrides(app, o, base_dir, default_domain)?;
        plans.push(app_plan(app, base_dir)?);
    }
    let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| anyhow!("cannot write the manifest: {e}"))?;
    Ok(Plan { yaml, apps: plans })
}

fn apply_overrides(app: &mut Mapping, o: &Overrides, base_dir: &Path, default_domain: Option<&str>) -> Result<()> {
    let name = app.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if o.docker_image.is_some() && app.get("buildpacks").is_some_and(|b| !b.is_null()) {
        bail!("Application '{name}': --docker-image cannot be used with an app that has buildpacks in the manifest.");
    }
    if !o.buildpacks.is_empty() && app.get("docker").is_some() {
        bail!("Application '{name}': -b cannot be used with an app that has a docker image in the manifest.");
    }
    if let Some(path) = &o.path {
        let path = if path.is_absolute() { path.clone() } else { base_dir.join(path) };
        app.insert("path".into(), path.to_string_lossy().into_owned().into());
    }
    if !o.buildpacks.is_empty() {
        let list: Vec<Value> = if matches!(o.buildpacks.as_slice(), [b] if b == "default" || b == "null") {
            Vec::new()
        } else {
            o.buildpacks.iter().map(|b| Value::from(b.as_str())).collect()
        };
        app.insert("buildpacks".into(), Value::Sequence(list));
    }
    if let Some(stack) = &o.stack {
        app.insert("stack".into(), stack.as_str().into());
    }
    if let Some(image) = &o.docker_image {
        let mut docker = Mapping::new();
        docker.insert("image".into(), image.as_str().into());
        if let Some(user) = &o.docker_username {
            docker.insert("username".into(), user.as_str().into());
        }
        app.insert("docker".into(), Value::Mapping(docker));
    }
    // Process-level settings go to the `web` process when the manifest lists one.
    let has_web = web_process(app).is_some();
    let target = if has_web { web_process(app).ok_or_else(|| anyhow!("no web process"))? } else { &mut *app };
    if let Some(command) = &o.command {
        let value = if command.is_empty() || command == "null" { Value::Null } else { command.as_str().into() };
        target.insert("command".into(), value);
    }
    if let Some(n) = o.instances {
        target.insert("instances".into(), n.into());
    }
    if let Some(m) = &o.memory {
        target.insert("memory".into(), normalize_quantity(m)?.into());
    }
    if let Some(k) = &o.disk {
        target.insert("disk_quota".into(), normalize_quantity(k)?.into());
    }
    if let Some(kind) = &o.health_check_type {
        let kind = if kind == "none" { "process" } else { kind.as_str() };
        target.insert("health-check-type".into(), kind.into());
    }
    if let Some(endpoint) = &o.endpoint {
        target.insert("health-check-http-endpoint".into(), endpoint.as_str().into());
    }
    if let Some(t) = o.timeout {
        target.insert("timeout".into(), t.into());
    }
    if o.hostname.is_some() || o.domain.is_some() {
        let host = o.hostname.as_deref().unwrap_or(&name);
        let Some(domain) = o.domain.as_deref().or(default_domain) else {
            bail!("Application '{name}': --hostname needs a domain (-d DOMAIN): the org has no default domain.");
        };
        let route = if host.is_empty() { domain.to_owned() } else { format!("{host}.{domain}") };
        let mut entry = Mapping::new();
        entry.insert("route".into(), route.as_str().into());
        app.insert("routes".into(), Value::Sequence(vec![Value::Mapping(entry)]));
        app.remove("no-route");
        app.remove("random-route");
    }
    if o.no_route {
        app.insert("no-route".into(), true.into());
    }
    if o.random_route {
        app.insert("random-route".into(), true.into());
    }
    let flagged = |key: &str| app.get(key).and_then(Value::as_bool).unwrap_or(false);
    if !flagged("no-route") && !flagged("random-route") {
        app.insert("default-route".into(), true.into());
    }
    Ok(())
}

fn web_process(app: &mut Mapping) -> Option<&mut Mapping> {
    app.get_mut("processes")?.as_sequence_mut()?.iter_mut().find_map(|p| match p {
        Value::Mapping(m) if m.get("type").and_then(Value::as_str) == Some("web") => Some(m),
        _ => None,
    })
}

fn app_plan(app: &Mapping, base_dir: &Path) -> Result<AppPlan> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let name = text(app.get("name")).unwrap_or_default();
    let docker = app.get("docker");
    let docker_image = text(docker.and_then(|d| d.get("image")));
    if docker.is_some() && docker_image.is_none() {
        bail!("Application '{name}': 'docker' needs an 'image'.");
    }
    let path = match text(app.get("path")) {
        Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Some(p) => base_dir.join(p),
        None => base_dir.to_path_buf(),
    };
    Ok(AppPlan { name, docker_image, docker_username: text(docker.and_then(|d| d.get("username"))), path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[&str]) -> BTreeMap<String, Value> {
        collect_vars(&pairs.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[]).unwrap()
    }

    #[test]
    fn a_plain_docker_push_generates_cf_s_manifest() {
        let o = Overrides { docker_image: Some("busybox:latest".into()), ..Default::default() };
        let plan = plan(None, Some("myapp"), &o, Path::new("/work"), None).unwrap();
        assert_eq!(
            plan.yaml,
            "applications:\n- name: myapp\n  docker:\n    image: busybox:latest\n  default-route: true\n"
        );
        assert_eq!(plan.apps[0].docker_image.as_deref(), Some("busybox:latest"));
    }

    #[test]
    fn flags_become_manifest_keys() {
        let o = Overrides {
            path: Some("site".into()),
            instances: Some(2),
            memory: Some("64m".into()),
            disk: Some("1gb".into()),
            health_check_type: Some("http".into()),
            endpoint: Some("/health".into()),
            timeout: Some(30),
            command: Some("./run".into()),
            buildpacks: vec!["a".into(), "b".into()],
            hostname: Some("www".into()),
            domain: Some("example.org".into()),
            ..Default::default()
        };
        let plan = plan(None, Some("w"), &o, Path::new("/src"), None).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&plan.yaml).unwrap();
        let app = &doc["applications"][0];
        assert_eq!(app["path"], "/src/site");
        assert_eq!(app["instances"], 2);
        assert_eq!(app["memory"], "64M");
        assert_eq!(app["disk_quota"], "1G");
        assert_eq!(app["health-check-type"], "http");
        assert_eq!(app["health-check-http-endpoint"], "/health");
        assert_eq!(app["timeout"], 30);
        assert_eq!(app["command"], "./run");
        assert_eq!(app["buildpacks"], Value::Sequence(vec!["a".into(), "b".into()]));
        assert_eq!(app["routes"][0]["route"], "www.example.org");
        assert_eq!(app["default-route"], true);
        assert_eq!(plan.apps[0].path, PathBuf::from("/src/site"));
    }

    #[test]
    fn no_route_and_random_route_replace_the_default_route() {
        let o = Overrides { no_route: true, ..Default::default() };
        let plan = plan(None, Some("w"), &o, Path::new("/"), None).unwrap();
        assert!(plan.yaml.contains("no-route: true") && !plan.yaml.contains("default-route"), "{}", plan.yaml);
        let o = Overrides { random_route: true, ..Default::default() };
        let plan = super::plan(None, Some("w"), &o, Path::new("/"), None).unwrap();
        assert!(plan.yaml.contains("random-route: true") && !plan.yaml.contains("default-route"), "{}", plan.yaml);
    }

    #[test]
    fn vars_are_interpolated_typed_and_inline() {
        let text =
            "applications:\n- name: ((name))\n  instances: ((n))\n  env:\n    URL: https://((host)).example.org/x\n";
        let mut v = vars(&["name=web", "host=h1"]);
        v.insert("n".into(), serde_yaml_ng::from_str("3").unwrap());
        let doc = parse(text, &v).unwrap();
        assert_eq!(doc["applications"][0]["name"], "web");
        assert_eq!(doc["applications"][0]["instances"], 3);
        assert_eq!(doc["applications"][0]["env"]["URL"], "https://h1.example.org/x");
    }

    #[test]
    fn missing_vars_are_named() {
        let err = parse("applications:\n- name: ((a))\n  memory: ((b))M\n", &vars(&[])).unwrap_err();
        assert_eq!(err.to_string(), "Expected to find variables: a, b");
    }

    #[test]
    fn vars_files_and_flags_merge_with_flags_winning() {
        let files = vec![(PathBuf::from("v.yml"), "a: 1\nb: from-file\n".to_owned())];
        let vars = collect_vars(&["b=from-flag".to_owned()], &files).unwrap();
        assert_eq!(vars["a"], 1);
        assert_eq!(vars["b"], "from-flag");
        let bad = vec![(PathBuf::from("v.yml"), "- a\n".to_owned())];
        assert!(collect_vars(&[], &bad).unwrap_err().to_string().contains("mapping"));
        assert!(collect_vars(&["novalue".to_owned()], &[]).unwrap_err().to_string().contains("NAME=VALUE"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        assert!(parse("applications: [", &vars(&[])).unwrap_err().to_string().contains("not valid YAML"));
        assert!(parse("applications: []\n", &vars(&[])).unwrap_err().to_string().contains("no applications"));
        assert!(parse("foo: 1\n", &vars(&[])).unwrap_err().to_string().contains("no applications"));
        assert!(parse("applications:\n- memory: 1G\n", &vars(&[])).unwrap_err().to_string().contains("no name"));
    }

    #[test]
    fn multi_app_manifests_select_by_name_and_refuse_flags() {
        let doc = parse("applications:\n- name: a\n  path: a-dir\n- name: b\n", &vars(&[])).unwrap();
        let all = plan(Some(doc.clone()), None, &Overrides::default(), Path::new("/m"), None).unwrap();
        assert_eq!(all.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all.apps[0].path, PathBuf::from("/m/a-dir"));
        assert_eq!(all.apps[1].path, PathBuf::from("/m"));
        let one = plan(Some(doc.clone()), Some("b"), &Overrides::default(), Path::new("/m"), None).unwrap();
        assert_eq!(one.apps.len(), 1);
        assert!(!one.yaml.contains("name: a"), "{}", one.yaml);
        let err = plan(Some(doc.clone()), Some("c"), &Overrides::default(), Path::new("/m"), None).unwrap_err();
        assert_eq!(err.to_string(), "Could not find app named 'c' in manifest.");
        let o = Overrides { instances: Some(2), ..Default::default() };
        assert!(plan(Some(doc), None, &o, Path::new("/m"), None).unwrap_err().to_string().contains("multiple apps"));
    }

    #[test]
    fn process_settings_go_to_the_web_process() {
        let doc =
            parse("applications:\n- name: a\n  processes:\n  - type: web\n    instances: 1\n", &vars(&[])).unwrap();
        let o = Overrides { instances: Some(4), ..Default::default() };
        let out = plan(Some(doc), None, &o, Path::new("/"), None).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&out.yaml).unwrap();
        assert_eq!(doc["applications"][0]["processes"][0]["instances"], 4);
        assert!(doc["applications"][0].get("instances").is_none());
    }

    #[test]
    fn refused_flag_combinations() {
        let docker = || Overrides { docker_image: Some("i".into()), ..Default::default() };
        let cases: Vec<(Overrides, bool, bool, &str)> = vec![
            (Overrides { buildpacks: vec!["x".into()], ..docker() }, false, false, "--docker-image, -o, -b"),
            (Overrides { path: Some(".".into()), ..docker() }, false, false, "--docker-image, -o, -p"),
            (Overrides { stack: Some("s".into()), ..docker() }, false, false, "--docker-image, -o, -s"),
            (
                Overrides { docker_username: Some("u".into()), ..Default::default() },
                false,
                false,
                "must be used together",
            ),
            (Overrides { no_route: true, random_route: true, ..Default::default() }, false, false, "--random-route"),
            (
                Overrides { no_route: true, hostname: Some("h".into()), ..Default::default() },
                false,
                false,
                "--hostname",
            ),
            (Overrides::default(), true, true, "--no-start, --no-wait"),
            (
                Overrides { health_check_type: Some("port".into()), endpoint: Some("/".into()), ..Default::default() },
                false,
                false,
                "--endpoint",
            ),
            (Overrides { health_check_type: Some("tcp".into()), ..Default::default() }, false, false, "invalid health"),
            (Overrides { memory: Some("64".into()), ..Default::default() }, false, false, "unit of measurement"),
        ];
        for (o, no_start, no_wait, want) in cases {
            let err = validate_flags(&o, no_start, no_wait).unwrap_err().to_string();
            assert!(err.contains(want), "{o:?}: {err}");
        }
        assert!(validate_flags(&docker(), false, false).is_ok());
        let err = plan(
            parse("applications:\n- name: a\n  buildpacks: [x]\n", &vars(&[])).ok(),
            None,
            &docker(),
            Path::new("/"),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("buildpacks"), "{err}");
    }

    #[test]
    fn hostname_and_domain_make_one_route() {
        let o = Overrides { hostname: Some("www".into()), ..Default::default() };
        let out = plan(None, Some("w"), &o, Path::new("/"), Some("apps.test")).unwrap();
        assert!(out.yaml.contains("route: www.apps.test"), "{}", out.yaml);
        let o = Overrides { domain: Some("example.org".into()), ..Default::default() };
        let out = plan(None, Some("w"), &o, Path::new("/"), None).unwrap();
        assert!(out.yaml.contains("route: w.example.org"), "{}", out.yaml);
        let o = Overrides { hostname: Some("www".into()), ..Default::default() };
        assert!(plan(None, Some("w"), &o, Path::new("/"), None).unwrap_err().to_string().contains("-d DOMAIN"));
    }

    #[test]
    fn quantities_are_normalized() {
        assert_eq!(normalize_quantity("256m").unwrap(), "256M");
        assert_eq!(normalize_quantity("2GB").unwrap(), "2G");
        assert!(normalize_quantity("0M").is_err());
        assert!(normalize_quantity("lots").is_err());
    }
}
