//! One-off tasks: `hearth run-task`, `tasks` and `terminate-task`, as cf v8 runs and prints
//! them (`POST /v3/apps/:guid/tasks`, `GET /v3/apps/:guid/tasks`, `POST
//! /v3/tasks/:guid/actions/cancel`). `run-task --wait` also waits for the task's end and
//! fails when the task fails.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::commands::apps::{doing, find_app};
use crate::commands::lifecycle::quantity_mb;
use crate::output::Ui;
use crate::output::table::{render, render_key_values};
use crate::resources::{guid, with_query};
use crate::session::Session;

/// How often `run-task --wait` looks at the task.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct RunTaskArgs {
    /// The app's name
    pub name: String,
    /// The command to run (a shell command line, run in the app's directory)
    #[arg(long, short = 'c')]
    pub command: Option<String>,
    /// A name for the task (default: 8 hex characters)
    #[arg(long = "name")]
    pub task_name: Option<String>,
    /// Memory limit (e.g. 256M, 1G); default: 1G
    #[arg(short = 'm')]
    pub memory: Option<String>,
    /// Disk limit (e.g. 256M, 1G); default: 1G
    #[arg(short = 'k')]
    pub disk: Option<String>,
    /// Wait until the task has ended; fail if it failed
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// The app's name
    pub name: String,
    /// Print the V3 task resources as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TerminateTaskArgs {
    /// The app's name
    pub name: String,
    /// The task's id (its sequence id, the `id` column of `hearth tasks`)
    pub task_id: u64,
}

/// The body of a task create: only what was given.
pub fn create_body(args: &RunTaskArgs) -> Result<Value> {
    let command = args.command.as_deref().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
        anyhow!("Incorrect Usage: the required flag '--command' was not specified (e.g. --command 'rake db:migrate')")
    })?;
    let mut body = json!({ "command": command });
    if let Some(n) = &args.task_name {
        body["name"] = json!(n);
    }
    if let Some(m) = &args.memory {
        body["memory_in_mb"] = json!(quantity_mb(m)?);
    }
    if let Some(k) = &args.disk {
        body["disk_in_mb"] = json!(quantity_mb(k)?);
    }
    Ok(body)
}

pub async fn run_task(session: &mut Session, args: RunTaskArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let body = create_body(&args)?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Creating task for app {}", args.name)));
    let task = session.post(&format!("/v3/apps/{}/tasks", guid(&app)), &body).await?;
    ui.say("Task has been submitted successfully for execution.");
    ui.ok();
    ui.say("");
    let name = task["name"].as_str().unwrap_or_default().to_string();
    let id = task["sequence_id"].to_string();
    ui.print(render_key_values(&[("task name", name.clone()), ("task id", id.clone())]));
    if !args.wait {
        return Ok(());
    }
    ui.say("");
    ui.say(format!("Waiting for task {name} (id {id}) to end..."));
    let path = format!("/v3/tasks/{}", guid(&task));
    loop {
        let now = session.get(&path).await?;
        match now["state"].as_str().unwrap_or_default() {
            "SUCCEEDED" => {
                ui.say(format!("Task {name} (id {id}) succeeded."));
                return Ok(());
            }
            "FAILED" => {
                let reason = now.pointer("/result/failure_reason").and_then(Value::as_str).unwrap_or("unknown");
                bail!("Task {name} (id {id}) failed: {reason}");
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// The task table as `cf tasks` prints it (newest first).
pub fn render_tasks(tasks: &[Value]) -> String {
    let mut rows = vec![["id", "name", "state", "start time", "command"].map(String::from).to_vec()];
    for t in tasks {
        rows.push(vec![
            t["sequence_id"].to_string(),
            t["name"].as_str().unwrap_or_default().to_owned(),
            t["state"].as_str().unwrap_or_default().to_owned(),
            start_time(t["created_at"].as_str().unwrap_or_default()),
            t["command"].as_str().map_or_else(|| "[hidden]".to_owned(), str::to_owned),
        ]);
    }
    render(&rows)
}

/// `2026-01-02T03:04:05Z` → `Fri, 02 Jan 2026 03:04:05 UTC`, as cf prints start times.
fn start_time(created_at: &str) -> String {
    let format = time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(created_at, &format) else { return created_at.to_owned() };
    let shown = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    t.format(&shown).unwrap_or_else(|_| created_at.to_owned())
}

pub async fn tasks(session: &mut Session, args: TasksArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    ui.say(doing(session, &format!("Getting tasks for app {}", args.name)));
    ui.say("");
    let path = with_query(&format!("/v3/apps/{}/tasks", guid(&app)), &[("order_by", "-created_at")])?;
    let tasks = session.list(&path).await?;
    if tasks.is_empty() {
        ui.say("No tasks found.");
    } else {
        ui.print(render_tasks(&tasks));
    }
    ui.json(&Value::Array(tasks))
}

pub async fn terminate_task(session: &mut Session, args: TerminateTaskArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let app = find_app(session, &args.name).await?;
    let id = args.task_id.to_string();
    let path = with_query(&format!("/v3/apps/{}/tasks", guid(&app)), &[("sequence_ids", id.as_str())])?;
    let task = session
        .list(&path)
        .await?
        .into_iter()
        .find(|t| t["sequence_id"].as_u64() == Some(args.task_id))
        .ok_or_else(|| anyhow!("Task sequence ID {id} not found."))?;
    ui.say(doing(session, &format!("Terminating task {id} of app {}", args.name)));
    session.post(&format!("/v3/tasks/{}/actions/cancel", guid(&task)), &json!({})).await?;
    ui.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: Option<&str>) -> RunTaskArgs {
        RunTaskArgs {
            name: "app".into(),
            command: command.map(str::to_string),
            task_name: Some("migrate".into()),
            memory: Some("256M".into()),
            disk: Some("1G".into()),
            wait: false,
        }
    }

    #[test]
    fn a_task_body_carries_what_was_given_in_megabytes() {
        let body = create_body(&args(Some("rake db:migrate"))).unwrap();
        assert_eq!(
            body,
            json!({"command": "rake db:migrate", "name": "migrate", "memory_in_mb": 256, "disk_in_mb": 1024})
        );
        assert!(create_body(&args(None)).unwrap_err().to_string().contains("--command"));
        assert!(create_body(&args(Some("  "))).is_err());
        let mut bad = args(Some("x"));
        bad.memory = Some("lots".into());
        assert!(create_body(&bad).is_err());
    }

    #[test]
    fn tasks_print_as_cf_prints_them() {
        let out = render_tasks(&[
            json!({"sequence_id": 2, "name": "migrate", "state": "SUCCEEDED", "created_at": "2026-01-02T03:04:05Z", "command": "rake db:migrate"}),
            json!({"sequence_id": 1, "name": "abcd1234", "state": "FAILED", "created_at": "2026-01-01T00:00:00Z"}),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("id") && lines[0].contains("start time"), "{out}");
        assert!(lines[1].contains("migrate") && lines[1].contains("Fri, 02 Jan 2026 03:04:05 UTC"), "{out}");
        assert!(lines[2].contains("FAILED") && lines[2].contains("[hidden]"), "{out}");
    }
}
