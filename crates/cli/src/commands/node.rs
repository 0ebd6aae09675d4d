//! `hearth containers …` and `hearth images …`: operators' views of one server's
//! container runtime and image store (the `/hearth/v1/` endpoints; admins only).

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::output::Ui;
use crate::output::table::{render, render_key_values};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum ContainersCommand {
    /// List the containers on the server's machine
    List(JsonArgs),
    /// Show one container: state, process, resource use
    Info(ContainerArgs),
    /// Run a command in a new container (host stack, or a pulled image) and print its output
    Run(RunArgs),
    /// Destroy a container and everything it holds
    Destroy(DestroyArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Pull an image into the server's image store, showing progress
    Pull(PullArgs),
    /// List the pulled images
    List(JsonArgs),
    /// Show the image store's counters (pulls, downloads, cache hits, layers)
    Metrics(JsonArgs),
    /// Remove layers no image, stack or container uses, least recently used first
    Gc(JsonArgs),
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// The container's id
    pub id: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The container's id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A pulled image to run (default: the host stack)
    #[arg(long)]
    pub image: Option<String>,
    /// The container's id (default: generated)
    #[arg(long)]
    pub name: Option<String>,
    /// NAME=value for the environment; repeat for more
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Keep the container after the command ends (destroy it with `containers destroy`)
    #[arg(long)]
    pub keep: bool,
    /// Start it and return at once, printing its address and ports (implies --keep)
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// A container port to map to a free host port; repeat for more
    #[arg(short = 'p', long = "port")]
    pub ports: Vec<u16>,
    /// Limit what the container may write to its root filesystem, in MB
    #[arg(long = "disk-mb")]
    pub disk_mb: Option<u64>,
    /// Print the result (exit status, stdout, stderr) as JSON
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments (default: the image's entrypoint and cmd)
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// registry/repository:tag or registry/repository@sha256:…
    pub reference: String,
    /// Registry user name
    #[arg(long)]
    pub username: Option<String>,
    /// Registry password (or set HEARTH_REGISTRY_PASSWORD)
    #[arg(long, env = "HEARTH_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Print the pulled image as JSON (no progress)
    #[arg(long)]
    pub json: bool,
}

pub async fn containers(session: &mut Session, command: ContainersCommand) -> Result<()> {
    session.require_login()?;
    match command {
        ContainersCommand::List(args) => list_containers(session, args).await,
        ContainersCommand::Info(args) => container_info(session, args).await,
        ContainersCommand::Run(args) => run(session, args).await,
        ContainersCommand::Destroy(args) => {
            let ui = Ui::new(false);
            ui.say(format!("Destroying container {}...", args.id));
            session.request(Method::DELETE, &format!("/hearth/v1/containers/{}", args.id), None).await?;
            ui.ok();
            Ok(())
        }
    }
}

pub async fn images(session: &mut Session, command: ImagesCommand) -> Result<()> {
    session.require_login()?;
    match command {
        ImagesCommand::Pull(args) => pull(session, args).await,
        ImagesCommand::List(args) => {
            let ui = Ui::new(args.json);
            let images = resources(session.get("/hearth/v1/images").await?);
            if images.is_empty() {
                ui.say("No images pulled.");
            } else {
                let mut rows = vec![["reference", "digest", "layers", "size"].map(String::from).to_vec()];
                rows.extend(images.iter().map(|i| {
                    vec![text(i, "reference"), short_digest(&text(i, "digest")), text(i, "layers"), size(&i["size"])]
                }));
                ui.print(render(&rows));
            }
            ui.json(&Value::Array(images))
        }
        ImagesCommand::Gc(args) => {
            let ui = Ui::new(args.json);
            ui.say("Collecting unused layers...");
            let report = session.post("/hearth/v1/images/gc", &json!({})).await?;
            let removed = report["removed"].as_array().map(Vec::len).unwrap_or(0);
            ui.say(format!(
                "Removed {removed} layers ({}); {} stored, {} in use",
                size(&report["bytes_freed"]),
                size(&report["bytes_used"]),
                size(&report["bytes_in_use"])
            ));
            ui.ok();
            ui.json(&report)
        }
        ImagesCommand::Metrics(args) => {
            let ui = Ui::new(args.json);
            let metrics = session.get("/hearth/v1/images/metrics").await?;
            if let Some(fields) = metrics.as_object() {
                let pairs: Vec<(&str, String)> = fields.iter().map(|(k, v)| (k.as_str(), plain(v))).collect();
                ui.print(render_key_values(&pairs));
            }
            ui.json(&metrics)
        }
    }
}

async fn list_containers(session: &mut Session, args: JsonArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    let containers = resources(session.get("/hearth/v1/containers").await?);
    if containers.is_empty() {
        ui.say("No containers.");
    } else {
        let mut rows = vec![["id", "state", "pid", "memory", "command"].map(String::from).to_vec()];
        rows.extend(containers.iter().map(|c| {
            vec![text(c, "id"), text(c, "state"), text(c, "pid"), size(&c["usage"]["memory_bytes"]), command(c)]
        }));
        ui.print(render(&rows));
    }
    ui.json(&Value::Array(containers))
}

async fn container_info(session: &mut Session, args: ContainerArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    let c = session.get(&format!("/hearth/v1/containers/{}", args.id)).await?;
    let cpu = c["usage"]["cpu_nanos"].as_u64().map(|n| format!("{:.3}s", n as f64 / 1e9)).unwrap_or_default();
    ui.print(render_key_values(&[
        ("id", text(&c, "id")),
        ("state", text(&c, "state")),
        ("pid", text(&c, "pid")),
        ("exit", exit_text(&c["exit"])),
        ("command", command(&c)),
        ("user", format!("{}:{}", plain(&c["user"]["uid"]), plain(&c["user"]["gid"]))),
        ("memory", size(&c["usage"]["memory_bytes"])),
        ("cpu", cpu),
        ("oom kills", plain(&c["usage"]["oom_kills"])),
    ]));
    ui.json(&c)
}

async fn run(session: &mut Session, args: RunArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    let mut body = json!({"command": args.command, "env": args.env, "ports": args.ports});
    if let Some(mb) = args.disk_mb {
        body["disk_mb"] = json!(mb);
    }
    if let Some(image) = &args.image {
        body["image"] = json!(image);
    }
    if let Some(name) = &args.name {
        body["id"] = json!(name);
    }
    let created = session.post("/hearth/v1/containers", &body).await?;
    let id = text(&created, "id");
    if args.detach {
        ui.say(format!("Started container {id}"));
        if let Some(address) = created["network"]["address"].as_str() {
            ui.say(format!("  address: {address}"));
        }
        for port in created["network"]["ports"].as_array().into_iter().flatten() {
            ui.say(format!("  port {} -> host port {}", plain(&port["container"]), plain(&port["host"])));
        }
        ui.ok();
        return ui.json(&created);
    }
    let path = format!("/hearth/v1/containers/{id}");
    let finished = async {
        let mut waited = session.post(&format!("{path}/wait"), &json!({})).await?;
        while waited["exit"].is_null() {
            waited = session.post(&format!("{path}/wait"), &json!({})).await?;
        }
        let output = session.get(&format!("{path}/output")).await?;
        anyhow::Ok((waited["exit"].clone(), output))
    }
    .await;
    if !args.keep {
        session.request(Method::DELETE, &path, None).await?;
    }
    let (exit, output) = finished?;
    if ui.is_json() {
        ui.json(&json!({"id": id, "exit": exit, "stdout": output["stdout"], "stderr": output["stderr"]}))?;
    } else {
        print!("{}", output["stdout"].as_str().unwrap_or_default());
        eprint!("{}", output["stderr"].as_str().unwrap_or_default());
    }
    match (exit["code"].as_i64(), exit["signal"].as_i64()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => bail!("The command exited with status {code}"),
        (_, Some(signal)) => bail!("The command was killed by signal {signal}"),
        _ => bail!("The command's exit status is unknown"),
    }
}

async fn pull(session: &mut Session, args: PullArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    let mut body = json!({"reference": args.reference});
    match (&args.username, &args.password) {
        (Some(username), Some(password)) => {
            body["username"] = json!(username);
            body["password"] = json!(password);
        }
        (None, None) => {}
        _ => bail!("Give both --username and --password (or HEARTH_REGISTRY_PASSWORD), or neither"),
    }
    ui.say(format!("Pulling {}...", args.reference));
    let mut last = Value::Null;
    session
        .post_streaming("/hearth/v1/images/pull", &body, |line| {
            let Ok(event) = serde_json::from_str::<Value>(line) else { return };
            match event["event"].as_str() {
                Some("resolved") => ui.say(format!(
                    "  {} layers, {} to fetch at most",
                    plain(&event["layers"]),
                    size(&event["total_bytes"])
                )),
                Some("layer_cached") => ui.say(format!("  {}: already here", short_digest(&text(&event, "digest")))),
                Some("layer_stored") => {
                    ui.say(format!("  {}: stored ({})", short_digest(&text(&event, "digest")), size(&event["size"])))
                }
                _ => {}
            }
            if event.get("image").is_some() || event.get("error").is_some() {
                last = event;
            }
        })
        .await?;
    if let Some(error) = last["error"].as_str() {
        bail!("Pull failed: {error}");
    }
    let image = last["image"].clone();
    if image.is_null() {
        bail!("The server ended the pull without a result; try again");
    }
    ui.say(format!("Pulled {} ({})", text(&image, "reference"), text(&image, "digest")));
    ui.ok();
    ui.json(&image)
}

fn resources(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut o) => match o.remove("resources") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text(v: &Value, key: &str) -> String {
    plain(&v[key])
}

fn command(c: &Value) -> String {
    c["command"].as_array().map(|a| a.iter().map(plain).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn exit_text(exit: &Value) -> String {
    match (exit["code"].as_i64(), exit["signal"].as_i64()) {
        (Some(code), _) => format!("status {code}"),
        (_, Some(signal)) => format!("signal {signal}"),
        _ => String::new(),
    }
}

fn short_digest(digest: &str) -> String {
    digest.strip_prefix("sha256:").map(|h| format!("sha256:{}", &h[..h.len().min(12)])).unwrap_or(digest.to_string())
}

/// Bytes as people read them (K, M, G with one decimal).
fn size(v: &Value) -> String {
    let Some(bytes) = v.as_u64() else { return String::new() };
    let units = [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, scale) in units {
        if bytes >= scale {
            return format!("{:.1}{unit}", bytes as f64 / scale as f64);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests_read_like_docker_prints_them() {
        assert_eq!(size(&json!(512)), "512B");
        assert_eq!(size(&json!(1536)), "1.5K");
        assert_eq!(size(&json!(52_428_800)), "50.0M");
        assert_eq!(size(&Value::Null), "");
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
        assert_eq!(short_digest("odd"), "odd");
    }
}
