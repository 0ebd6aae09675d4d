//! `hearth push`: cf v8's push flow. The manifest (from `-f`/`./manifest.yml` or
//! generated from flags) goes to `apply_manifest`; then per app: a docker package or the
//! bits (resource matches, then the multipart upload), a build with its staging logs,
//! the droplet made current, a restart, the wait for instances and the summary.

pub mod bits;
pub mod cfignore;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::commands::apps::{doing, render_summary, summary};
use crate::commands::lifecycle::{POLL, set_droplet, stage, startup_timeout, wait_for_start};
use crate::output::Ui;
use crate::resources::{guid, name, targeted_space, with_query};
use crate::session::Session;
use bits::Bits;
use manifest::{AppPlan, Overrides};

/// cf asks the server about this many resources at once.
const MATCH_CHUNK: usize = 5000;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The app's name (with a manifest: push only this app of it)
    pub name: Option<String>,
    /// The manifest to use (default: manifest.yml or manifest.yaml in the current directory)
    #[arg(short = 'f')]
    pub manifest: Option<PathBuf>,
    /// Ignore manifest.yml in the current directory
    #[arg(long, conflicts_with = "manifest")]
    pub no_manifest: bool,
    /// The app's files: a directory or a zip (default: the current directory)
    #[arg(short = 'p')]
    pub path: Option<PathBuf>,
    /// A buildpack to use (repeat for several; 'default' or 'null' for auto-detection)
    #[arg(short = 'b')]
    pub buildpacks: Vec<String>,
    /// The start command ('null' for the droplet's own)
    #[arg(short = 'c')]
    pub command: Option<String>,
    /// Number of instances
    #[arg(short = 'i')]
    pub instances: Option<u32>,
    /// Memory limit per instance (e.g. 256M, 1G)
    #[arg(short = 'm')]
    pub memory: Option<String>,
    /// Disk limit per instance (e.g. 512M, 1G)
    #[arg(short = 'k')]
    pub disk: Option<String>,
    /// The stack to stage and run on
    #[arg(short = 's')]
    pub stack: Option<String>,
    /// Health check type: port, process or http
    #[arg(short = 'u', long = "health-check-type")]
    pub health_check_type: Option<String>,
    /// The path the http health check requests (with -u http)
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Seconds an instance may take to become healthy (also how long push waits)
    #[arg(short = 't')]
    pub timeout: Option<u32>,
    /// Run this docker image instead of staging bits
    #[arg(long, short = 'o')]
    pub docker_image: Option<String>,
    /// The registry user for --docker-image (the password comes from CF_DOCKER_PASSWORD)
    #[arg(long)]
    pub docker_username: Option<String>,
    /// The host name of the app's route (default: the app's name)
    #[arg(long, short = 'n')]
    pub hostname: Option<String>,
    /// The domain of the app's route (default: the org's default domain)
    #[arg(short = 'd')]
    pub domain: Option<String>,
    /// Do not stage or start the app
    #[arg(long)]
    pub no_start: bool,
    /// Do not wait for every process, only for the web process
    #[arg(long)]
    pub no_wait: bool,
    /// Do not map a route to the app
    #[arg(long)]
    pub no_route: bool,
    /// Map a route with a random host name
    #[arg(long)]
    pub random_route: bool,
    /// A manifest variable, NAME=VALUE (repeatable)
    #[arg(long = "var")]
    pub vars: Vec<String>,
    /// A YAML file of manifest variables (repeatable)
    #[arg(long = "vars-file")]
    pub vars_files: Vec<PathBuf>,
    /// Print the pushed apps' summaries as JSON
    #[arg(long)]
    pub json: bool,
}

impl PushArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            path: self.path.clone(),
            buildpacks: self.buildpacks.clone(),
            command: self.command.clone(),
            instances: self.instances,
            memory: self.memory.clone(),
            disk: self.disk.clone(),
            stack: self.stack.clone(),
            health_check_type: self.health_check_type.clone(),
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
            docker_image: self.docker_image.clone(),
            docker_username: self.docker_username.clone(),
            hostname: self.hostname.clone(),
            domain: self.domain.clone(),
            no_route: self.no_route,
            random_route: self.random_route,
        }
    }
}

/// The manifest file to read, if any: `-f` (a file, or a directory holding one), else
/// one in `cwd` unless `--no-manifest`.
fn manifest_path(args: &PushArgs, cwd: &Path) -> Result<Option<PathBuf>> {
    let in_dir = |dir: &Path| ["manifest.yml", "manifest.yaml"].iter().map(|n| dir.join(n)).find(|p| p.is_file());
    match &args.manifest {
        Some(path) if path.is_dir() => {
            in_dir(path).map(Some).ok_or_else(|| anyhow!("No manifest.yml or manifest.yaml in {}.", path.display()))
        }
        Some(path) if path.is_file() => Ok(Some(cwd.join(path))),
        Some(path) => bail!("The manifest {} does not exist: check the path given with -f.", path.display()),
        None if args.no_manifest => Ok(None),
        None => Ok(in_dir(cwd)),
    }
}

pub async fn push(session: &mut Session, args: PushArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut overrides = args.overrides();
    // `-p` is relative to where push runs (a manifest's `path:` to the manifest's directory).
    overrides.path = overrides.path.map(|p| cwd.join(p));
    manifest::validate_flags(&overrides, args.no_start, args.no_wait)?;
    session.require_login()?;
    let space = targeted_space(session)?;

    // Everything local first: a bad manifest or flag sends nothing.
    let manifest_file = manifest_path(&args, &cwd)?;
    let mut vars_files = Vec::new();
    for path in &args.vars_files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the vars file {}", path.display()))?;
        vars_files.push((path.clone(), text));
    }
    let vars = manifest::collect_vars(&args.vars, &vars_files)?;
    let (doc, base_dir) = match &manifest_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let doc = manifest::parse(&text, &vars).with_context(|| format!("in {}", path.display()))?;
            (Some(doc), path.parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.clone()))
        }
        None => (None, cwd.clone()),
    };
    let default_domain =
        if overrides.hostname.is_some() && overrides.domain.is_none() { default_domain(session).await? } else { None };
    let plan = manifest::plan(doc, args.name.as_deref(), &overrides, &base_dir, default_domain.as_deref())?;
    let docker_password = if plan.apps.iter().any(|a| a.docker_username.is_some()) {
        Some(std::env::var("CF_DOCKER_PASSWORD").map_err(|_| {
            anyhow!("Environment variable CF_DOCKER_PASSWORD not set: export the registry password in it to use --docker-username.")
        })?)
    } else {
        None
    };

    // Apply the manifest: creates the apps and sets routes, scale, env, health checks.
    match &manifest_file {
        Some(path) => ui.say(doing(session, &format!("Pushing from manifest {}", path.display()))),
        None => ui.say(doing(session, &format!("Pushing app {}", plan.apps[0].name))),
    }
    if manifest_file.is_some() {
        show_diff(session, &ui, &space.guid, &plan.yaml).await?;
    }
    ui.say("Applying manifest...");
    let response = session
        .request_raw(
            Method::POST,
            &format!("/v3/spaces/{}/actions/apply_manifest", space.guid),
            "application/x-yaml",
            plan.yaml.clone().into_bytes(),
        )
        .await?;
    let location = response
        .headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("The server accepted the manifest but named no job to wait for."))?
        .to_owned();
    session.wait_for_job(&location).await.map_err(|e| anyhow!("Applying the manifest failed: {e:#}"))?;

    let names = plan.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(",");
    let apps = session
        .list(&with_query("/v3/apps", &[("names", names.as_str()), ("space_guids", space.guid.as_str())])?)
        .await?;
    let mut summaries = Vec::new();
    for app_plan in &plan.apps {
        let app = apps
            .iter()
            .find(|a| name(a) == app_plan.name)
            .cloned()
            .ok_or_else(|| anyhow!("App '{}' was not created by the manifest.", app_plan.name))?;
        let pushed = push_app(session, &ui, &args, &app, app_plan, docker_password.as_deref()).await;
        let app = session.get(&format!("/v3/apps/{}", guid(&app))).await?;
        ui.say("");
        if let Err(e) = pushed {
            // As cf: a start that failed still shows where the instances are.
            if app["state"] == "STARTED"
                && let Ok(summary) = summary(session, &app).await
            {
                ui.print(render_summary(&summary, time::OffsetDateTime::now_utc()));
                ui.say("");
            }
            return Err(e);
        }
        let summary = summary(session, &app).await?;
        ui.print(render_summary(&summary, time::OffsetDateTime::now_utc()));
        summaries.push(summary);
    }
    ui.json(&Value::Array(summaries))
}

async fn default_domain(session: &mut Session) -> Result<Option<String>> {
    let org = session.config.org.clone().ok_or_else(|| anyhow!("No org targeted."))?;
    match session.get(&format!("/v3/organizations/{}/domains/default", org.guid)).await {
        Ok(domain) => Ok(Some(name(&domain).to_owned())),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => Ok(None),
        Err(e) => Err(e),
    }
}

/// cf v8 shows what the manifest changes; a server without `manifest_diff` is skipped.
async fn show_diff(session: &mut Session, ui: &Ui, space_guid: &str, yaml: &str) -> Result<()> {
    let path = format!("/v3/spaces/{space_guid}/manifest_diff");
    match session.request_raw(Method::POST, &path, "application/x-yaml", yaml.as_bytes().to_vec()).await {
        Ok(response) => {
            for change in response.json()?["diff"].as_array().into_iter().flatten() {
                let op = match change["op"].as_str() {
                    Some("add") => "+",
                    Some("remove") => "-",
                    _ => "~",
                };
                ui.say(format!("{op} {} {}", change["path"].as_str().unwrap_or_default(), change["value"]));
            }
            Ok(())
        }
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 404 || a.status >= 500) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn push_app(
    session: &mut Session,
    ui: &Ui,
    args: &PushArgs,
    app: &Value,
    plan: &AppPlan,
    docker_password: Option<&str>,
) -> Result<()> {
    let app_guid = guid(app).to_owned();
    ui.say("");
    ui.say(format!("Pushing app {}...", plan.name));
    let package = match &plan.docker_image {
        Some(image) => {
            let mut data = json!({"image": image});
            if let Some(user) = &plan.docker_username {
                data["username"] = user.as_str().into();
                data["password"] = docker_password.unwrap_or_default().into();
            }
            let body = json!({"type": "docker", "data": data, "relationships": {"app": {"data": {"guid": app_guid}}}});
            session.post("/v3/packages", &body).await?
        }
        None => upload_bits(session, ui, &app_guid, &plan.path).await?,
    };
    let package_guid = guid(&package).to_owned();
    wait_for_package(session, &package).await?;
    if args.no_start {
        if app["state"] == "STARTED" {
            session.post(&format!("/v3/apps/{app_guid}/actions/stop"), &json!({})).await?;
        }
        return Ok(());
    }
    let droplet = stage(session, ui, app, &package_guid).await?;
    set_droplet(session, &app_guid, &droplet).await?;
    session.post(&format!("/v3/apps/{app_guid}/actions/restart"), &json!({})).await?;
    let timeout = args.timeout.map(|t| Duration::from_secs(u64::from(t))).unwrap_or_else(startup_timeout);
    wait_for_start(session, ui, app, timeout, args.no_wait).await
}

/// Resource matches, then a bits package and its multipart upload (only what the
/// server lacks goes in `package.zip`).
async fn upload_bits(session: &mut Session, ui: &Ui, app_guid: &str, path: &Path) -> Result<Value> {
    let bits = Bits::read(path)?;
    let matchable: Vec<Value> = bits.matchable().map(bits::resource).collect();
    let mut matched = std::collections::HashSet::new();
    for chunk in matchable.chunks(MATCH_CHUNK) {
        let answer = session.post("/v3/resource_matches", &json!({"resources": chunk})).await?;
        matched.extend(bits::matched_paths(&bits, &answer));
    }
    let body = json!({"type": "bits", "relationships": {"app": {"data": {"guid": app_guid}}}});
    let package = session.post("/v3/packages", &body).await?;
    let resources: Vec<Value> = bits.entries.iter().filter(|e| matched.contains(&e.path)).map(bits::resource).collect();
    let all_matched = bits.entries.iter().all(|e| matched.contains(&e.path));
    let zip = if all_matched { None } else { Some(bits.zip(&matched)?) };
    ui.say(format!(
        "Uploading files: {} files, {} bytes; {} already on the server; {} bytes to send...",
        matchable.len(),
        bits.total_bytes(),
        matched.len(),
        zip.as_ref().map_or(0, Vec::len)
    ));
    let (content_type, body) = bits::multipart(&Value::Array(resources), zip.as_deref());
    let path = format!("/v3/packages/{}/upload", guid(&package));
    let response = session.request_raw(Method::POST, &path, &content_type, body).await?;
    response.json()
}

/// Waits until the package is READY (FAILED and EXPIRED end the push).
async fn wait_for_package(session: &mut Session, package: &Value) -> Result<()> {
    let mut state = package["state"].as_str().unwrap_or_default().to_owned();
    loop {
        match state.as_str() {
            "READY" => return Ok(()),
            "FAILED" => bail!("Package failed to process correctly after upload."),
            "EXPIRED" => bail!("Package expired: push again."),
            _ => {}
        }
        tokio::time::sleep(POLL).await;
        let package = session.get(&format!("/v3/packages/{}", guid(package))).await?;
        state = package["state"].as_str().unwrap_or_default().to_owned();
    }
}
