//! What the platform offers and what happened to an app: `hearth stacks`, `domains`,
//! `events APP` and `download-droplet APP`, as cf v8 prints them.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::Value;

use crate::api_error::ApiError;
use crate::commands::apps::{bytes, doing, find_app};
use crate::output::Ui;
use crate::output::table::render;
use crate::resources::{guid, name, targeted_org, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print the V3 resources as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The app's name
    pub name: String,
    /// Print the V3 audit event resources as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownloadDropletArgs {
    /// The app's name
    pub name: String,
    /// The droplet to download (default: the app's current droplet)
    #[arg(long)]
    pub droplet: Option<String>,
    /// Where to write it: a directory (the file is droplet_GUID.tgz in it) or a file name
    #[arg(long)]
    pub path: Option<String>,
}

pub async fn stacks(session: &mut Session, args: JsonArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    ui.say(format!("Getting stacks as {}...", session.user_name()));
    ui.say("");
    let stacks = session.list("/v3/stacks?order_by=name").await?;
    if stacks.is_empty() {
        ui.say("No stacks found.");
    } else {
        let mut rows = vec![vec!["name".to_owned(), "description".to_owned()]];
        rows.extend(
            stacks.iter().map(|s| vec![name(s).to_owned(), s["description"].as_str().unwrap_or_default().to_owned()]),
        );
        ui.print(render(&rows));
    }
    ui.json(&Value::Array(stacks))
}

/// The domain table as `cf domains` prints it (shared domains first, as the API orders them).
pub fn render_domains(domains: &[Value], org_guid: &str) -> String {
    let mut rows = vec![["name", "availability", "internal", "protocols"].map(String::from).to_vec()];
    for d in domains {
        let owner = d.pointer("/relationships/organization/data/guid").and_then(Value::as_str);
        let availability = match owner {
            None => "shared",
            Some(o) if o == org_guid => "private",
            Some(_) => "shared with this org",
        };
        let internal = if d["internal"].as_bool() == Some(true) { "true" } else { "" };
        let protocols: Vec<&str> =
            d["supported_protocols"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        rows.push(vec![name(d).to_owned(), availability.to_owned(), internal.to_owned(), protocols.join(", ")]);
    }
    render(&rows)
}

pub async fn domains(session: &mut Session, args: JsonArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let org = targeted_org(session)?;
    ui.say(format!("Getting domains in org {} as {}...", org.name, session.user_name()));
    ui.say("");
    let domains = session.list(&format!("/v3/organizations/{}/domains?order_by=name", org.guid)).await?;
    if domains.is_empty() {
        ui.say("No domains found.");
    } else {
        ui.print(render_domains(&domains, &org.guid));
    }
    ui.json(&Value::Array(domains))
}

/// One event line's description: the request's interesting fields, as cf prints them.
fn describe(event: &Value) -> String {
    let Some(request) = event.pointer("/data/request").and_then(Value::as_object) else { return String::new() };
    let mut parts: Vec<String> = request
        .iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
        .map(|(k, v)| format!("{k}: {}", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
        .collect();
    parts.sort();
    parts.join(", ")
}

/// The event table as `cf events` prints it (newest first).
pub fn render_events(events: &[Value]) -> String {
    let mut rows = vec![["time", "event", "actor", "description"].map(String::from).to_vec()];
    for e in events {
        rows.push(vec![
            e["created_at"].as_str().unwrap_or_default().to_owned(),
            e["type"].as_str().unwrap_or_default().to_owned(),
            e.pointer("/actor/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            describe(e),
        ]);
    }
    render(&rows)
}

pub async fn events(session: &mut Session, args: EventsArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Getting events for app {}", args.name)));
    ui.say("");
    // cf v8 shows the newest page of events.
    let path = with_query(
        "/v3/audit_events",
        &[("target_guids", guid(&app)), ("order_by", "-created_at"), ("per_page", "50")],
    )?;
    let page = session.get(&path).await?;
    let events = page["resources"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        ui.say("No events found.");
    } else {
        ui.print(render_events(&events));
    }
    ui.json(&Value::Array(events))
}

/// Where a downloaded droplet goes: into `path` if it is a directory, else `path` itself;
/// without one, `droplet_GUID.tgz` in the working directory.
pub fn droplet_file(path: Option<&str>, droplet_guid: &str) -> PathBuf {
    let file = format!("droplet_{droplet_guid}.tgz");
    match path {
        Some(p) if Path::new(p).is_dir() => Path::new(p).join(file),
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(file),
    }
}

/// `3.5M of 12M (29%)`, or `3.5M` when the size is not known.
fn transferred(done: u64, total: Option<u64>) -> String {
    match total.filter(|t| *t > 0) {
        Some(t) => format!("{} of {} ({}%)", bytes(done), bytes(t), done.saturating_mul(100) / t),
        None => bytes(done),
    }
}

pub async fn download_droplet(session: &mut Session, args: DownloadDropletArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    let droplet_guid = match &args.droplet {
        Some(g) => {
            ui.say(doing(session, &format!("Downloading droplet {g} for app {}", args.name)));
            g.clone()
        }
        None => {
            ui.say(doing(session, &format!("Downloading current droplet for app {}", args.name)));
            match session.get(&format!("/v3/apps/{}/droplets/current", guid(&app))).await {
                Ok(d) => guid(&d).to_owned(),
                Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => {
                    return Err(anyhow!("App '{}' does not have a current droplet.", args.name));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let file = droplet_file(args.path.as_deref(), &droplet_guid);
    let mut progress = ui.progress();
    session
        .download_to(&format!("/v3/droplets/{droplet_guid}/download"), &file, |done, total| {
            let last = total == Some(done);
            progress.show(transferred(done, total), last);
        })
        .await?;
    drop(progress);
    ui.say(format!("Droplet downloaded successfully at {}", file.display()));
    ui.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transfers_show_what_is_done_of_what_is_due() {
        assert_eq!(transferred(0, Some(12 << 20)), "0 of 12M (0%)");
        assert_eq!(transferred(3 << 19, Some(12 << 20)), "1.5M of 12M (12%)");
        assert_eq!(transferred(12 << 20, Some(12 << 20)), "12M of 12M (100%)");
        assert_eq!(transferred(2048, None), "2K");
    }

    #[test]
    fn domains_say_who_may_use_them() {
        let out = render_domains(
            &[
                json!({"name": "apps.test", "internal": false, "supported_protocols": ["http"], "relationships": {"organization": {"data": null}}}),
                json!({"name": "mine.test", "internal": false, "supported_protocols": ["http"], "relationships": {"organization": {"data": {"guid": "o1"}}}}),
            ],
            "o1",
        );
        assert!(out.lines().nth(1).unwrap().contains("shared"), "{out}");
        assert!(out.lines().nth(2).unwrap().contains("private"), "{out}");
    }

    #[test]
    fn a_droplet_lands_in_a_directory_or_at_a_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(droplet_file(Some(d), "g"), dir.path().join("droplet_g.tgz"));
        assert_eq!(droplet_file(Some("/tmp/x.tgz"), "g"), PathBuf::from("/tmp/x.tgz"));
        assert_eq!(droplet_file(None, "g"), PathBuf::from("droplet_g.tgz"));
    }

    #[test]
    fn events_show_the_request() {
        let out = render_events(&[json!({"created_at": "2026-01-01T00:00:00Z", "type": "audit.app.update",
            "actor": {"name": "admin"}, "data": {"request": {"name": "web", "environment_variables": {"A": "1"}}}})]);
        assert!(out.contains("audit.app.update") && out.contains("admin") && out.contains("name: web"), "{out}");
    }
}
