//! `hearth-bench`: how fast Hearth issues tokens and lists apps, on this machine, in one
//! run. It starts the real platform in-process on a loopback port (SQLite in a fresh
//! temporary data directory), seeds it through its own API, and drives it with a load
//! generator of its own: N concurrent keep-alive connections, a warm-up, then a fixed
//! measured window in which every latency is recorded. The same generator drives a
//! minimal axum handler serving a captured `GET /v3/apps` body byte for byte, so the
//! API's throughput can be read as a fraction of what any handler could reach here.
//!
//! It is a benchmark, not a test: it asserts nothing but that requests succeed, and it
//! talks to 127.0.0.1 only.
//!
//! Two more subcommands measure the rest of the platform beside the tool a user would
//! pick instead: `containers` (Hearth's runtime beside `runc run` and `crun run`) and
//! `pulls` (a cold pull through hearth-images beside `skopeo copy`); `router` (Hearth's
//! router beside nginx, both driven by wrk); `scheduler` measures placement and convergence
//! at scale over simulated cells; `push` times `hearth push` of a static site to its first
//! 200 through the router beside copying the files and serving them by hand.

mod containers;
mod cpu;
mod instances;
mod load;
mod logs;
mod minimal;
mod platform;
mod pulls;
mod push;
mod report;
mod router;
mod scheduler;
mod stats;

use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use reqwest::StatusCode;
use tokio::runtime::Handle;

// The same allocator as the `hearth` binary, so the platform measured here is the one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::load::{LoadConfig, Measurement};
use crate::minimal::Minimal;
use crate::platform::Platform;
use crate::report::{Comparison, Machine, Report, Seed, Settings, TargetResult};

const LIST_PATH: &str = "/v3/apps";
const LIST_QUERY: &str = "?per_page=50";
const SEED_CONCURRENCY: usize = 16;
const COMPARISON_ROUNDS: u32 = 2;

/// Benchmarks of Hearth on this machine, each beside what a user would pick instead.
/// Without a subcommand: the API benchmark (`hearth-bench api`).
#[derive(Debug, Parser)]
#[command(name = "hearth-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    api: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Token issuance and app listing throughput of an in-process Hearth platform (the default)
    Api(Args),
    /// Create + start + run `/bin/true` + destroy: Hearth's runtime beside `runc run` and `crun run`
    Containers(containers::Args),
    /// A cold pull of a ~50 MB image from a loopback registry: hearth-images beside `skopeo copy`
    Pulls(pulls::Args),
    /// `hearth push` of a static site to its first 200 through the router, by phase, beside serving it by hand (root)
    Push(push::Args),
    /// Lines per second from an app's stdout to `hearth logs` following it, and any lost, beside `tail -F` (root)
    Logs(logs::Args),
    /// Placement and convergence at scale over simulated cells, compared with Diego's published scale
    Scheduler(scheduler::Args),
    /// Desired → RUNNING for real instances through the scheduler and a cell, and instances/s, beside the runtime by hand (root)
    Instances(instances::Args),
    /// Requests/s and p50/p99 through Hearth's router beside nginx, driven by wrk (apt: `nginx-light wrk`)
    Router(router::Args),
    /// Runs a command N times and prints each run's nanoseconds (used inside `unshare -m` for crun)
    #[command(hide = true)]
    TimeLoop(containers::TimeLoopArgs),
}

/// Token issuance and app listing throughput of an in-process Hearth platform.
#[derive(Debug, clap::Args)]
struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Seconds each target is measured for, after its warm-up
    #[arg(long, value_name = "SECS", default_value_t = 8.0)]
    duration: f64,
    /// Seconds each target is driven before measuring (not recorded)
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent keep-alive connections per target
    #[arg(long, value_name = "N", default_value_t = 16)]
    connections: usize,
    /// Apps stored before listing them
    #[arg(long, value_name = "N", default_value_t = 1000)]
    apps: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => api(cli.api),
        Some(Command::Api(args)) => api(args),
        Some(Command::Containers(args)) => containers::main(args),
        Some(Command::Pulls(args)) => pulls::main(args),
        Some(Command::Push(args)) => push::main(args),
        Some(Command::Logs(args)) => logs::main(args),
        Some(Command::Scheduler(args)) => scheduler::main(args),
        Some(Command::Router(args)) => router::main(args),
        Some(Command::Instances(args)) => instances::main(args),
        Some(Command::TimeLoop(args)) => containers::time_loop(args),
    }
}

fn api(args: Args) -> anyhow::Result<()> {
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(args.apps >= 1, "--apps must be at least 1");
    let load = LoadConfig {
        connections: args.connections,
        warmup: Duration::try_from_secs_f64(args.warmup).context("--warmup must be a number of seconds")?,
        duration: Duration::try_from_secs_f64(args.duration)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--duration must be a positive number of seconds")?,
    };
    // The servers and the load generator get separate runtimes, so a server worker
    // busy hashing a password does not also stall the generator's clock.
    let servers = tokio::runtime::Builder::new_multi_thread().thread_name("bench-server").enable_all().build()?;
    let generator = tokio::runtime::Builder::new_multi_thread().thread_name("bench-load").enable_all().build()?;
    let report = servers.block_on(run(&args, load, generator.handle().clone()))?;
    println!("{}", if args.json { report.to_json() } else { report.to_table() });
    Ok(())
}

pub(crate) fn progress(message: &str) {
    eprintln!("hearth-bench: {message}");
}

async fn run(args: &Args, load: LoadConfig, generator: Handle) -> anyhow::Result<Report> {
    let machine = Machine::detect();
    progress("starting the platform");
    let platform = Platform::start().await?;
    let result = bench(args, load, &generator, &platform, machine).await;
    platform.stop().await?;
    result
}

async fn bench(
    args: &Args,
    load: LoadConfig,
    generator: &Handle,
    platform: &Platform,
    machine: Machine,
) -> anyhow::Result<Report> {
    let token = platform.admin_token().await?;
    progress(&format!("seeding {} apps", args.apps));
    let seed_time = platform.seed(&token, args.apps, SEED_CONCURRENCY).await?;

    let list = format!("{LIST_PATH}{LIST_QUERY}");
    let (content_type, body) = platform.capture(platform.get(&list, &token)?).await?;
    let page: serde_json::Value = serde_json::from_slice(&body).context("the app list is not JSON")?;
    ensure!(
        page["pagination"]["total_results"].as_u64() == Some(args.apps as u64),
        "the app list does not count {} apps: {}",
        args.apps,
        page["pagination"]
    );
    let minimal = Minimal::start(LIST_PATH, &content_type, body.clone()).await?;
    let minimal_request = reqwest::Client::new().get(format!("{}{list}", minimal.url)).bearer_auth(&token).build()?;

    let drive = |label: &str, config: LoadConfig, request: reqwest::Request| {
        progress(&format!("measuring {label}"));
        generator.spawn(load::run(config, request, StatusCode::OK))
    };
    // The API and the minimal handler take turns, COMPARISON_ROUNDS each, so a
    // neighbour's burst of CPU use on a shared machine does not fall on one side only.
    let round = LoadConfig { duration: load.duration / COMPARISON_ROUNDS, ..load };
    let measured = async {
        let password = drive("the password grant", load, platform.password_grant()?).await??;
        let client = drive("the client_credentials grant", load, platform.client_credentials_grant()?).await??;
        let (mut apis, mut freshes, mut baselines) = (Vec::new(), Vec::new(), Vec::new());
        for i in 1..=COMPARISON_ROUNDS {
            let n = format!("(round {i} of {COMPARISON_ROUNDS})");
            apis.push(drive(&format!("the API's app list {n}"), round, platform.get(&list, &token)?).await??);
            let fresh = platform.get_fresh(&list, &token)?;
            freshes.push(drive(&format!("the API's app list, built afresh {n}"), round, fresh).await??);
            let request = minimal_request.try_clone().context("the minimal request has no body to clone")?;
            baselines.push(drive(&format!("the minimal handler {n}"), round, request).await??);
        }
        let merged = |all: Vec<Measurement>| all.into_iter().reduce(Measurement::merge).context("no round ran");
        anyhow::Ok([password, client, merged(apis)?, merged(freshes)?, merged(baselines)?])
    }
    .await;
    minimal.stop().await?;
    let [password, client, api, fresh, baseline] = measured?;

    let all: [&Measurement; 5] = [&password, &client, &api, &fresh, &baseline];
    ensure!(
        all.iter().all(|m| m.ok > 0),
        "a target completed no request: {}",
        all.iter().filter_map(|m| m.first_error.as_deref()).next().unwrap_or("no error recorded")
    );
    Ok(Report {
        machine,
        settings: Settings {
            connections: load.connections,
            warmup_secs: load.warmup.as_secs_f64(),
            duration_secs: load.duration.as_secs_f64(),
            comparison_rounds: COMPARISON_ROUNDS,
        },
        seed: Seed { apps: args.apps, secs: seed_time.as_secs_f64(), list_body_bytes: body.len() },
        results: vec![
            TargetResult::new("tokens: password grant (cf client)", "POST /oauth/token", &password),
            TargetResult::new("tokens: client_credentials (admin)", "POST /oauth/token", &client),
            TargetResult::new("Hearth API (admin token)", &format!("GET {list}"), &api),
            TargetResult::new("Hearth API, no-cache (fresh answer)", &format!("GET {list}"), &fresh),
            TargetResult::new("minimal axum handler, same bytes", &format!("GET {list}"), &baseline),
        ],
        comparison: Comparison::new(&api, &fresh, &baseline),
        notes: vec![
            "the API keeps a list's answer while the data it was built from is unchanged (the data generation, \
             read before the data on each request); the no-cache row asks for a fresh answer every time"
                .into(),
            "every token request verifies one argon2id hash (the user's password or the client's secret), \
             so tens of tokens per second per core is the expected order; for tokens, per sec = tokens issued per second"
                .into(),
            "the load generator runs in this process on the same CPUs as both servers; \
             the minimal handler's figure is partly bounded by the generator itself; \
             cores = CPU the whole process used on average during the window; \
             other work on the machine (see the load average) moves every figure"
                .into(),
        ],
    })
}
