//! `hearth start`, `stop`, `restart`, `restage`, `scale` and `delete`, and what push
//! shares with them: staging a package (build, poll, staging logs), assigning the
//! droplet and waiting for instances the way cf does (a process is up when one instance
//! runs; all crashed is a failure with a hint).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::commands::apps::{doing, find_app, lookup_app, show_summary};
use crate::commands::logs::StagingLogs;
use crate::commands::push::manifest::normalize_quantity;
use crate::output::Ui;
use crate::prompt;
use crate::resources::{guid, with_query};
use crate::session::Session;

/// cf polls builds, packages and instances every 3 s; Hearth is local, so faster
/// (measured, cli_push: a docker push of 2 instances to the first 200 took 1.66 s polling
/// every 500 ms, 1.18 s every 200 ms).
pub const POLL: Duration = Duration::from_millis(200);

/// Staging timeout (cf: CF_STAGING_TIMEOUT, 15 minutes).
const STAGING_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Args)]
pub struct AppNameArgs {
    /// The app's name
    pub name: String,
    /// Print the app summary as JSON when done
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The app's name
    pub name: String,
    /// Do not wait for instances to start
    #[arg(long)]
    pub no_wait: bool,
    /// Print the app summary as JSON when done
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The app's name
    pub name: String,
    /// Number of instances
    #[arg(short = 'i')]
    pub instances: Option<u32>,
    /// Memory limit per instance (e.g. 256M, 1G)
    #[arg(short = 'm')]
    pub memory: Option<String>,
    /// Disk limit per instance (e.g. 512M, 1G)
    #[arg(short = 'k')]
    pub disk: Option<String>,
    /// The process to scale
    #[arg(long, default_value = "web")]
    pub process: String,
    /// Restart without asking when memory or disk change
    #[arg(short = 'f')]
    pub force: bool,
    /// Print the app summary as JSON when done
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The app's name
    pub name: String,
    /// Also delete the app's routes
    #[arg(short = 'r')]
    pub routes: bool,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

/// Stages `package_guid`: starts the build, streams `STG` lines, waits for STAGED and
/// returns the droplet's guid. A failed build names its error and the next step.
pub async fn stage(session: &mut Session, ui: &Ui, app: &Value, package_guid: &str) -> Result<String> {
    let app_name = app["name"].as_str().unwrap_or_default().to_owned();
    ui.say("Staging app and tracing logs...");
    let logs = if ui.is_json() { None } else { StagingLogs::start(session, guid(app)).await };
    let result = poll_build(session, package_guid, &app_name).await;
    if let Some(logs) = logs {
        logs.finish().await;
    }
    result
}

async fn poll_build(session: &mut Session, package_guid: &str, app_name: &str) -> Result<String> {
    let build = session.post("/v3/builds", &json!({"package": {"guid": package_guid}})).await?;
    let path = format!("/v3/builds/{}", guid(&build));
    let started = Instant::now();
    loop {
        let build = session.get(&path).await?;
        match build["state"].as_str() {
            Some("STAGED") => {
                let Some(droplet) = build.pointer("/droplet/guid").and_then(Value::as_str) else {
                    bail!("The build of app {app_name} is STAGED but names no droplet.");
                };
                return Ok(droplet.to_owned());
            }
            Some("FAILED") => bail!(
                "{}\n\nTIP: Use 'hearth logs {app_name} --recent' for more information",
                build["error"].as_str().unwrap_or("Staging failed")
            ),
            _ => {}
        }
        if started.elapsed() > STAGING_TIMEOUT {
            bail!("Error staging application {app_name}: timed out after 15 minute(s)");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Makes `droplet_guid` the app's current droplet.
pub async fn set_droplet(session: &mut Session, app_guid: &str, droplet_guid: &str) -> Result<()> {
    let path = format!("/v3/apps/{app_guid}/relationships/current_droplet");
    match session.patch(&path, &json!({"data": {"guid": droplet_guid}})).await {
        Ok(_) => Ok(()),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 422) => {
            bail!("Unable to assign droplet: {e}")
        }
        Err(e) => Err(e),
    }
}

/// Waits until every process has a running instance (cf's PollStart). All instances of
/// a process crashed is a failure; so is `timeout`.
pub async fn wait_for_start(
    session: &mut Session,
    ui: &Ui,
    app: &Value,
    timeout: Duration,
    web_only: bool,
) -> Result<()> {
    let app_name = app["name"].as_str().unwrap_or_default().to_owned();
    let mut processes = session.list(&format!("/v3/apps/{}/processes", guid(app))).await?;
    if web_only {
        processes.retain(|p| p["type"] == "web");
    }
    let started = Instant::now();
    ui.say("Waiting for app to start...");
    'poll: loop {
        for process in &processes {
            let stats = session.get(&format!("/v3/processes/{}/stats", guid(process))).await?;
            let instances = stats["resources"].as_array().cloned().unwrap_or_default();
            if instances.is_empty() || instances.iter().any(|i| i["state"] == "RUNNING") {
                continue;
            }
            if instances.iter().all(|i| i["state"] == "CRASHED") {
                let details = instances.iter().find_map(|i| i["details"].as_str()).unwrap_or("crashed");
                bail!(
                    "Start unsuccessful: every instance of {app_name} crashed ({details}).\n\nTIP: use 'hearth logs {app_name} --recent' for more information"
                );
            }
            if let Some(details) = instances.iter().find_map(|i| i["details"].as_str().filter(|d| !d.is_empty())) {
                ui.warn(format!("Error starting instances: '{details}'"));
            }
            if started.elapsed() > timeout {
                bail!(
                    "Start app timeout\n\nTIP: Application must be listening on the right port. Instead of hard coding the port, use the $PORT environment variable.\n\nUse 'hearth logs {app_name} --recent' for more information"
                );
            }
            tokio::time::sleep(POLL).await;
            continue 'poll;
        }
        return Ok(());
    }
}

/// cf's startup timeout (CF_STARTUP_TIMEOUT, 5 minutes).
pub fn startup_timeout() -> Duration {
    Duration::from_secs(5 * 60)
}

/// The newest package that has no staged droplet yet.
async fn unstaged_package(session: &mut Session, app_guid: &str) -> Result<Option<String>> {
    let path = with_query(
        "/v3/packages",
        &[("app_guids", app_guid), ("order_by", "-created_at"), ("per_page", "1"), ("page", "1")],
    )?;
    let page = session.get(&path).await?;
    let Some(package) = page["resources"].as_array().and_then(|r| r.first()).cloned() else { return Ok(None) };
    let droplets =
        session.get(&format!("/v3/packages/{}/droplets?states=STAGED&per_page=1&page=1", guid(&package))).await?;
    let staged = droplets["resources"].as_array().is_some_and(|r| !r.is_empty());
    Ok((!staged && package["state"] == "READY").then(|| guid(&package).to_owned()))
}

pub async fn start(session: &mut Session, args: AppNameArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Starting app {}", args.name)));
    if app["state"] == "STARTED" {
        ui.say(format!("App '{}' is already started.", args.name));
        ui.ok();
        return ui.json(&json!({"app": app}));
    }
    let app_guid = guid(&app).to_owned();
    if let Some(package) = unstaged_package(session, &app_guid).await? {
        let droplet = stage(session, &ui, &app, &package).await?;
        set_droplet(session, &app_guid, &droplet).await?;
    }
    if let Err(e) = session.post(&format!("/v3/apps/{app_guid}/actions/start"), &json!({})).await {
        if e.downcast_ref::<ApiError>().is_some_and(|a| a.detail.contains("Assign a droplet before starting this app"))
        {
            bail!(
                "App cannot start without a package to stage or a droplet to run. Push it first: 'hearth push {}'.",
                args.name
            );
        }
        return Err(e);
    }
    wait_for_start(session, &ui, &app, startup_timeout(), false).await?;
    ui.say("");
    let app = find_app(session, &args.name).await?;
    show_summary(session, &ui, &app).await
}

pub async fn stop(session: &mut Session, args: AppNameArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Stopping app {}", args.name)));
    if app["state"] != "STARTED" {
        ui.say(format!("App {} is already stopped.", args.name));
        ui.ok();
        return ui.json(&app);
    }
    let stopped = session.post(&format!("/v3/apps/{}/actions/stop", guid(&app)), &json!({})).await?;
    ui.ok();
    ui.json(&stopped)
}

pub async fn restart(session: &mut Session, args: RestartArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    let app_guid = guid(&app).to_owned();
    ui.say(doing(session, &format!("Restarting app {}", args.name)));
    let droplet = match unstaged_package(session, &app_guid).await? {
        Some(package) => Some(stage(session, &ui, &app, &package).await?),
        None => None,
    };
    restart_with(session, &ui, &app, droplet.as_deref(), args.no_wait).await
}

/// cf's restart: stop (if started), assign a fresh droplet, start, wait, summary.
async fn restart_with(session: &mut Session, ui: &Ui, app: &Value, droplet: Option<&str>, no_wait: bool) -> Result<()> {
    let app_guid = guid(app).to_owned();
    if app["state"] == "STARTED" {
        ui.say("Stopping app...");
        session.post(&format!("/v3/apps/{app_guid}/actions/stop"), &json!({})).await?;
    }
    if let Some(droplet) = droplet {
        set_droplet(session, &app_guid, droplet).await?;
    }
    session.post(&format!("/v3/apps/{app_guid}/actions/start"), &json!({})).await?;
    wait_for_start(session, ui, app, startup_timeout(), no_wait).await?;
    ui.say("");
    let name = app["name"].as_str().unwrap_or_default().to_owned();
    let app = find_app(session, &name).await?;
    show_summary(session, ui, &app).await
}

pub async fn restage(session: &mut Session, args: AppNameArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    let app_guid = guid(&app).to_owned();
    ui.say(doing(session, &format!("Restaging app {}", args.name)));
    ui.warn("This action will cause app downtime.");
    let path = with_query(
        "/v3/packages",
        &[
            ("app_guids", app_guid.as_str()),
            ("states", "READY"),
            ("order_by", "-created_at"),
            ("per_page", "1"),
            ("page", "1"),
        ],
    )?;
    let page = session.get(&path).await?;
    let Some(package) = page["resources"].as_array().and_then(|r| r.first()).cloned() else {
        bail!("App {} has no eligible packages.\n\nTIP: Use 'hearth push {}' to create one.", args.name, args.name);
    };
    let droplet = stage(session, &ui, &app, guid(&package)).await?;
    restart_with(session, &ui, &app, Some(&droplet), false).await
}

pub async fn scale(session: &mut Session, args: ScaleArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let memory = args.memory.as_deref().map(quantity_mb).transpose()?;
    let disk = args.disk.as_deref().map(quantity_mb).transpose()?;
    let app = find_app(session, &args.name).await?;
    let app_guid = guid(&app).to_owned();
    if args.instances.is_none() && memory.is_none() && disk.is_none() {
        ui.say(doing(session, &format!("Showing current scale of app {}", args.name)));
        ui.say("");
        return show_summary(session, &ui, &app).await;
    }
    let needs_restart = memory.is_some() || disk.is_some();
    if needs_restart
        && !args.force
        && !prompt::confirm("This will cause the app to restart. Are you sure you want to scale?")?
    {
        ui.say("Scaling cancelled");
        return Ok(());
    }
    ui.say(doing(session, &format!("Scaling app {}", args.name)));
    let mut body = serde_json::Map::new();
    if let Some(n) = args.instances {
        body.insert("instances".into(), n.into());
    }
    if let Some(m) = memory {
        body.insert("memory_in_mb".into(), m.into());
    }
    if let Some(d) = disk {
        body.insert("disk_in_mb".into(), d.into());
    }
    let path = format!("/v3/apps/{app_guid}/processes/{}/actions/scale", args.process);
    if let Err(e) = session.post(&path, &Value::Object(body)).await {
        if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) {
            bail!("Process {} not found", args.process);
        }
        return Err(e);
    }
    if needs_restart && app["state"] == "STARTED" {
        ui.say("Stopping app...");
        session.post(&format!("/v3/apps/{app_guid}/actions/stop"), &json!({})).await?;
        session.post(&format!("/v3/apps/{app_guid}/actions/start"), &json!({})).await?;
    }
    if app["state"] == "STARTED" {
        wait_for_start(session, &ui, &app, startup_timeout(), false).await?;
    }
    ui.say("");
    let app = find_app(session, &args.name).await?;
    show_summary(session, &ui, &app).await
}

/// `256M` / `1G` → megabytes.
pub fn quantity_mb(input: &str) -> Result<u64> {
    let normalized = normalize_quantity(input)?;
    let (digits, unit) = normalized.split_at(normalized.len() - 1);
    let n: u64 = digits.parse()?;
    Ok(if unit == "G" { n * 1024 } else { n })
}

pub async fn delete(session: &mut Session, args: DeleteArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    if !args.force && !prompt::confirm(&format!("Really delete the app {}?", args.name))? {
        ui.say("Delete cancelled");
        return Ok(());
    }
    ui.say(doing(session, &format!("Deleting app {}", args.name)));
    let Some(app) = lookup_app(session, &args.name).await? else {
        ui.warn(format!("App '{}' does not exist.", args.name));
        ui.ok();
        return Ok(());
    };
    let app_guid = guid(&app).to_owned();
    let routes = if args.routes { session.list(&format!("/v3/apps/{app_guid}/routes")).await? } else { Vec::new() };
    for route in &routes {
        let others = route["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d.pointer("/app/guid").and_then(Value::as_str).is_some_and(|g| g != app_guid));
        if others {
            bail!(
                "The route {} is bound to more than one app; nothing was deleted. Unmap it from the other apps or delete without -r.",
                route["url"].as_str().unwrap_or_default()
            );
        }
    }
    session.delete_and_wait(&format!("/v3/apps/{app_guid}")).await?;
    for route in &routes {
        match session.request(Method::DELETE, &format!("/v3/routes/{}", guid(route)), None).await {
            Ok(response) => {
                if let Some(location) = response.headers.get("location").and_then(|l| l.to_str().ok()) {
                    let location = location.to_owned();
                    session.wait_for_job(&location).await?;
                }
            }
            Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => {}
            Err(e) => return Err(e),
        }
    }
    ui.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_megabytes() {
        assert_eq!(quantity_mb("256M").unwrap(), 256);
        assert_eq!(quantity_mb("2g").unwrap(), 2048);
        assert!(quantity_mb("2").is_err());
    }
}
