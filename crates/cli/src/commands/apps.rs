//! `hearth apps` and `hearth app NAME`, and the pieces other app commands share:
//! finding an app by name in the targeted space, and the app summary cf prints after
//! push, start, restart, restage and scale (processes, instances from stats, routes,
//! the current droplet).

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::output::Ui;
use crate::output::table::{render, render_key_values};
use crate::resources::{guid, name, targeted_space, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct AppsArgs {
    /// Print the apps with their processes and routes as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    /// The app's name
    pub name: String,
    /// Print only the app's guid
    #[arg(long)]
    pub guid: bool,
    /// Print the app summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// The app called `app_name` in the targeted space, if there is one.
pub async fn lookup_app(session: &mut Session, app_name: &str) -> Result<Option<Value>> {
    let space = targeted_space(session)?;
    let path = with_query("/v3/apps", &[("names", app_name), ("space_guids", space.guid.as_str())])?;
    Ok(session.list(&path).await?.into_iter().find(|a| name(a) == app_name))
}

/// The app called `app_name`, or an error saying how to list apps.
pub async fn find_app(session: &mut Session, app_name: &str) -> Result<Value> {
    lookup_app(session, app_name)
        .await?
        .ok_or_else(|| anyhow!("App '{app_name}' not found. Run 'hearth apps' to see the apps in the targeted space."))
}

/// The "Getting …/as user" line with org and space.
pub fn doing(session: &Session, what: &str) -> String {
    let org = session.config.org.as_ref().map(|o| o.name.clone()).unwrap_or_default();
    let space = session.config.space.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    format!("{what} in org {org} / space {space} as {}...", session.user_name())
}

pub async fn apps(session: &mut Session, args: AppsArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let space = targeted_space(session)?;
    ui.say(doing(session, "Getting apps"));
    ui.say("");
    let path =
        with_query("/v3/apps", &[("space_guids", space.guid.as_str()), ("order_by", "name"), ("per_page", "5000")])?;
    let apps = session.list(&path).await?;
    if apps.is_empty() {
        ui.say("No apps found");
        return ui.json(&json!([]));
    }
    let guids = apps.iter().map(|a| guid(a).to_owned()).collect::<Vec<_>>().join(",");
    let processes = session.list(&with_query("/v3/processes", &[("app_guids", guids.as_str())])?).await?;
    let routes = session.list(&with_query("/v3/routes", &[("app_guids", guids.as_str())])?).await?;
    let mut rows = vec![["name", "requested state", "processes", "routes"].map(String::from).to_vec()];
    let mut out = Vec::new();
    for app in &apps {
        let app_guid = guid(app);
        let mut mine: Vec<&Value> = processes
            .iter()
            .filter(|p| p.pointer("/relationships/app/data/guid").and_then(Value::as_str) == Some(app_guid))
            .collect();
        mine.sort_by_key(|p| process_order(p));
        let mut shown = Vec::new();
        let mut process_json = Vec::new();
        for process in mine {
            let stats = match session.get(&format!("/v3/processes/{}/stats", guid(process))).await {
                Ok(stats) => stats["resources"].as_array().cloned().unwrap_or_default(),
                Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => continue,
                Err(e) => return Err(e),
            };
            let running = stats.iter().filter(|s| s["state"] == "RUNNING").count();
            let kind = process["type"].as_str().unwrap_or_default();
            shown.push(format!("{kind}:{running}/{}", process["instances"].as_u64().unwrap_or(stats.len() as u64)));
            process_json.push(json!({"type": kind, "instances": process["instances"], "running": running}));
        }
        let urls: Vec<&str> =
            routes.iter().filter(|r| route_has_app(r, app_guid)).filter_map(|r| r["url"].as_str()).collect();
        rows.push(vec![
            name(app).to_owned(),
            app["state"].as_str().unwrap_or_default().to_ascii_lowercase(),
            shown.join(", "),
            urls.join(", "),
        ]);
        out.push(json!({"app": app, "processes": process_json, "routes": urls}));
    }
    ui.print(render(&rows));
    ui.json(&Value::Array(out))
}

pub async fn app(session: &mut Session, args: AppArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    if args.guid {
        println!("{}", guid(&app));
        return Ok(());
    }
    ui.say(doing(session, &format!("Showing health and status for app {}", args.name)));
    ui.say("");
    show_summary(session, &ui, &app).await
}

/// Does `route` send traffic to the app `app_guid`?
pub fn route_has_app(route: &Value, app_guid: &str) -> bool {
    route["destinations"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d.pointer("/app/guid").and_then(Value::as_str) == Some(app_guid)))
}

fn process_order(process: &Value) -> (bool, String) {
    let kind = process["type"].as_str().unwrap_or_default();
    (kind != "web", kind.to_owned())
}

/// Reads everything `cf app` shows: processes with stats, routes, the current droplet.
pub async fn summary(session: &mut Session, app: &Value) -> Result<Value> {
    let app_guid = guid(app).to_owned();
    let mut processes = session.list(&format!("/v3/apps/{app_guid}/processes")).await?;
    processes.sort_by_key(process_order);
    let mut with_stats = Vec::new();
    for process in processes {
        let process_guid = guid(&process).to_owned();
        let full = session.get(&format!("/v3/processes/{process_guid}")).await?;
        let stats = session.get(&format!("/v3/processes/{process_guid}/stats")).await?;
        with_stats.push(json!({"process": full, "instances": stats["resources"]}));
    }
    let routes = session.list(&format!("/v3/apps/{app_guid}/routes")).await?;
    let droplet = match session.get(&format!("/v3/apps/{app_guid}/droplets/current")).await {
        Ok(droplet) => droplet,
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => Value::Null,
        Err(e) => return Err(e),
    };
    Ok(json!({"app": app, "processes": with_stats, "routes": routes, "current_droplet": droplet}))
}

/// Reads the summary and prints it (a table for people, the summary for `--json`).
pub async fn show_summary(session: &mut Session, ui: &Ui, app: &Value) -> Result<()> {
    let summary = summary(session, app).await?;
    ui.print(render_summary(&summary, time::OffsetDateTime::now_utc()));
    ui.json(&summary)
}

/// The summary as cf prints it; `now` turns uptimes into "since" times.
pub fn render_summary(summary: &Value, now: time::OffsetDateTime) -> String {
    let app = &summary["app"];
    let droplet = &summary["current_droplet"];
    let urls: Vec<&str> =
        summary["routes"].as_array().into_iter().flatten().filter_map(|r| r["url"].as_str()).collect();
    let mut pairs = vec![
        ("name", name(app).to_owned()),
        ("requested state", app["state"].as_str().unwrap_or_default().to_ascii_lowercase()),
        ("routes", urls.join(", ")),
        ("last uploaded", droplet["created_at"].as_str().unwrap_or_default().to_owned()),
        ("stack", droplet["stack"].as_str().unwrap_or_default().to_owned()),
    ];
    if let Some(image) = droplet["image"].as_str() {
        pairs.push(("docker image", image.to_owned()));
    } else {
        let buildpacks: Vec<String> = droplet["buildpacks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| b["name"].as_str().or(b["buildpack_name"].as_str()).unwrap_or_default().to_owned())
            .collect();
        pairs.push(("buildpacks", buildpacks.join(", ")));
    }
    let mut out = render_key_values(&pairs);
    for entry in summary["processes"].as_array().into_iter().flatten() {
        let process = &entry["process"];
        let instances = entry["instances"].as_array().cloned().unwrap_or_default();
        let running = instances.iter().filter(|i| i["state"] == "RUNNING").count();
        out.push('\n');
        out.push_str(&render_key_values(&[
            ("type", process["type"].as_str().unwrap_or_default().to_owned()),
            ("instances", format!("{running}/{}", instances.len())),
            ("memory usage", format!("{}M", process["memory_in_mb"].as_u64().unwrap_or(0))),
            ("start command", process["command"].as_str().unwrap_or_default().to_owned()),
        ]));
        if instances.is_empty() {
            out.push_str("There are no running instances of this process.\n");
            continue;
        }
        let mut rows = vec![["", "state", "since", "cpu", "memory", "disk", "details"].map(String::from).to_vec()];
        for instance in &instances {
            let since = instance["uptime"]
                .as_i64()
                .filter(|_| instance["state"] == "RUNNING")
                .map(|up| (now - time::Duration::seconds(up)).replace_nanosecond(0).unwrap_or(now))
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default();
            let usage = &instance["usage"];
            rows.push(vec![
                format!("#{}", instance["index"].as_u64().unwrap_or(0)),
                instance["state"].as_str().unwrap_or_default().to_ascii_lowercase(),
                since,
                format!("{:.1}%", usage["cpu"].as_f64().unwrap_or(0.0) * 100.0),
                format!(
                    "{} of {}",
                    bytes(usage["mem"].as_u64().unwrap_or(0)),
                    bytes(instance["mem_quota"].as_u64().unwrap_or(0))
                ),
                format!(
                    "{} of {}",
                    bytes(usage["disk"].as_u64().unwrap_or(0)),
                    bytes(instance["disk_quota"].as_u64().unwrap_or(0))
                ),
                instance["details"].as_str().unwrap_or_default().to_owned(),
            ]);
        }
        out.push('\n');
        out.push_str(&render(&rows));
    }
    out
}

/// Bytes as cf shows them: `0`, `512K`, `12.5M`, `1G`.
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (size, unit) in UNITS {
        if n >= size {
            let value = n as f64 / size as f64;
            let text = format!("{value:.1}");
            return format!("{}{unit}", text.trim_end_matches(".0"));
        }
    }
    if n == 0 { "0".to_owned() } else { format!("{n}B") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_cf() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(64 * 1024 * 1024), "64M");
        assert_eq!(bytes(1536 * 1024), "1.5M");
        assert_eq!(bytes(1 << 30), "1G");
        assert_eq!(bytes(12), "12B");
    }

    #[test]
    fn the_summary_shows_instances_routes_and_the_droplet() {
        let summary = json!({
            "app": {"name": "web", "state": "STARTED"},
            "routes": [{"url": "web.apps.test"}],
            "current_droplet": {"created_at": "2026-01-01T00:00:00Z", "stack": null, "image": "r/web:1"},
            "processes": [{"process": {"type": "web", "memory_in_mb": 64, "command": "run"},
                "instances": [
                    {"index": 0, "state": "RUNNING", "uptime": 90, "usage": {"cpu": 0.015, "mem": 1048576, "disk": 0},
                     "mem_quota": 67108864, "disk_quota": 1073741824, "details": null},
                    {"index": 1, "state": "CRASHED", "uptime": 0, "usage": {}, "mem_quota": 67108864,
                     "disk_quota": 1073741824, "details": "exited with status 3"}]}]
        });
        let now = time::macros::datetime!(2026-01-01 00:10:00 UTC);
        let out = render_summary(&summary, now);
        assert!(out.contains("requested state:   started"), "{out}");
        assert!(out.contains("routes:            web.apps.test"), "{out}");
        assert!(out.contains("docker image:      r/web:1"), "{out}");
        assert!(out.contains("instances:       1/2"), "{out}");
        assert!(out.contains("#0   running   2026-01-01T00:08:30Z   1.5%   1M of 64M   0 of 1G"), "{out}");
        assert!(out.contains("#1   crashed") && out.contains("exited with status 3"), "{out}");
        let empty = json!({"app": {"name": "w", "state": "STOPPED"}, "routes": [], "current_droplet": null,
            "processes": [{"process": {"type": "web"}, "instances": []}]});
        assert!(render_summary(&empty, now).contains("There are no running instances of this process."));
    }
}
