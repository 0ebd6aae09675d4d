//! `hearth-bench instances` (root): real instances on this machine through the scheduler
//! and a cell — the time from 'desired' to RUNNING for one instance (auction, claim,
//! container create and start, the health check passing, RUNNING recorded) and instances
//! started per second for a burst — beside the container runtime doing the same container
//! by hand in the same run (the same request the cell makes, created, started, and its
//! port polled until it answers). The ratio is what the scheduler and the cell add.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hearth_cell::{CellConfig, Converger, Node, NodeConfig, Rep};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{
    ActualLrpKey, ActualState, Config, DesiredLrp, HealthCheck, HealthCheckType, Resources, RootFs, SystemClock,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::progress;
use crate::report::Machine;
use crate::stats::Summary;

const DEFAULT_HEARTH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/hearth");

const WEB: &str = "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec busybox httpd -f -p $PORT -h /tmp/www";

/// Desired → RUNNING through the scheduler and a cell, beside the runtime by hand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// One-instance runs on each side
    #[arg(long, value_name = "N", default_value_t = 10)]
    runs: usize,
    /// Instances desired at once for the instances-per-second figure
    #[arg(long, value_name = "N", default_value_t = 20)]
    burst: u32,
    /// The `hearth` binary the runtime runs as its helper (`cargo build --release -p hearth`)
    #[arg(long, env = "HEARTH_BINARY", value_name = "PATH", default_value = DEFAULT_HEARTH)]
    hearth_binary: PathBuf,
}

#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    machine: Machine,
    one_instance: Side,
    burst: Burst,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Side {
    platform: Option<Summary>,
    runtime_by_hand: Option<Summary>,
    /// platform median / by-hand median
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct Burst {
    instances: u32,
    platform_secs: f64,
    platform_per_sec: f64,
    runtime_by_hand_secs: f64,
    runtime_by_hand_per_sec: f64,
}

fn desired(guid: &str, instances: u32) -> DesiredLrp {
    DesiredLrp {
        process_guid: guid.into(),
        app_guid: format!("app-{guid}"),
        instances,
        memory_mb: 64,
        disk_mb: 64,
        max_pids: 256,
        rootfs: RootFs::Stack("cflinuxfs4".into()),
        image_credentials: None,
        droplet: None,
        start_command: WEB.into(),
        env: BTreeMap::new(),
        ports: vec![8080],
        health_check: HealthCheck {
            kind: HealthCheckType::Port,
            endpoint: None,
            start_timeout_secs: 60,
            invocation_timeout_secs: 1,
        },
        routes: vec![],
        log_source_id: guid.into(),
        metric_tags: BTreeMap::new(),
        placement_tags: BTreeSet::new(),
        version: 0,
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    ensure!(args.runs >= 1 && args.burst >= 1, "--runs and --burst must be at least 1");
    let helper = args.hearth_binary.canonicalize().with_context(|| {
        format!("the hearth binary is missing at {}: cargo build --release -p hearth", args.hearth_binary.display())
    })?;
    let dir = PathBuf::from(format!("/var/tmp/hearth-bench-instances-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = tokio.block_on(run(&args, &dir, &helper));
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let ms = |s: &Option<Summary>| s.as_ref().map_or("-".to_string(), |s| format!("{:.1}", s.median_ms));
        println!("Real instances on this machine ({} runs, burst of {})", args.runs, report.burst.instances);
        println!("  desired → RUNNING, one instance (median ms):");
        println!("    scheduler + cell:        {}", ms(&report.one_instance.platform));
        println!("    runtime by hand:         {}", ms(&report.one_instance.runtime_by_hand));
        println!(
            "    ratio:                   {}",
            report.one_instance.ratio.map_or("-".into(), |r| format!("{r:.2}"))
        );
        let b = &report.burst;
        println!("  a burst of {} instances:", b.instances);
        println!("    scheduler + cell:        {:.2} s ({:.1} instances/s)", b.platform_secs, b.platform_per_sec);
        println!(
            "    runtime by hand:         {:.2} s ({:.1} instances/s)",
            b.runtime_by_hand_secs, b.runtime_by_hand_per_sec
        );
        for note in &report.notes {
            println!("  note: {note}");
        }
    }
    Ok(())
}

async fn run(args: &Args, dir: &Path, helper: &Path) -> anyhow::Result<Report> {
    let cgroup_parent = format!("hearth-bench-instances-{}", std::process::id());
    let network = hearth_containers::NetworkConfig {
        bridge: "hearthbinst0".into(),
        subnet: "10.253.8.0/22".parse().expect("a valid subnet"),
        table: "hearth_bench_instances".into(),
        host_ports: 62000..=62999,
    };
    let node_config = NodeConfig {
        dir: dir.join("node"),
        insecure_registries: Vec::new(),
        cgroup_parent: cgroup_parent.clone(),
        helper: Some(helper.to_path_buf()),
        network: network.clone(),
    };
    let node = Arc::new(Node::open(&node_config).await?);
    let store = hearth_store::Store::open(&format!("sqlite://{}", dir.join("hearth.db").display())).await?;
    let sched = SchedulerStore::new(store, Arc::new(SystemClock));
    let cell = CellConfig::new("bench-cell", Resources { memory_mb: 64 << 10, disk_mb: 256 << 10, containers: 512 });
    let rep = Rep::start(cell.clone(), node.clone(), sched.clone()).await?;
    let converger = Converger::new(sched.clone(), Config::default());
    converger.add_cell(rep.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let (converger, shutdown) = (converger.clone(), shutdown.clone());
        async move { converger.run(shutdown).await }
    });
    let measured = measure(args, &sched, &rep, &node, &cell).await;
    shutdown.cancel();
    for (dir, e) in hearth_containers::cgroup::sweep(Path::new(&format!("/{cgroup_parent}"))) {
        eprintln!("hearth-bench: could not remove cgroup {}: {e}", dir.display());
    }
    let _ = std::process::Command::new("ip").args(["link", "del", &network.bridge]).output();
    for family in ["inet", "bridge"] {
        let _ = std::process::Command::new("nft").args(["delete", "table", family, &network.table]).output();
    }
    let (platform, by_hand, burst) = measured?;
    let (platform, runtime_by_hand) = (Summary::of(&platform), Summary::of(&by_hand));
    let ratio = platform.as_ref().zip(runtime_by_hand.as_ref()).map(|(p, h)| p.median_ms / h.median_ms);
    Ok(Report {
        benchmark: "instances",
        machine: Machine::detect(),
        one_instance: Side { platform, runtime_by_hand, ratio },
        burst,
        notes: vec![
            format!(
                "the cell runs with Hearth's defaults: start-up health checks after 5 ms, doubling up to every {} \
                 ms, disk limits on (a loop-mounted file system per instance); by hand makes the same container \
                 request and polls the port every 5 ms",
                cell.startup_check_interval.as_millis()
            ),
            "each one-instance run is desired, reaches RUNNING, and is removed (and its container gone) before \
             the next; both sides run busybox httpd on the host stack"
                .into(),
        ],
    })
}

type Measured = (Vec<Duration>, Vec<Duration>, Burst);

async fn measure(
    args: &Args,
    sched: &SchedulerStore,
    rep: &Rep,
    node: &Arc<Node>,
    cell: &CellConfig,
) -> anyhow::Result<Measured> {
    progress(&format!("scheduler + cell: {} single instances", args.runs));
    let mut platform = Vec::new();
    for i in 0..args.runs {
        let guid = format!("one-{i}");
        let t0 = Instant::now();
        sched.desire_lrp(desired(&guid, 1)).await?;
        until_running(sched, &guid, 1).await?;
        platform.push(t0.elapsed());
        gone(sched, rep, &guid).await?;
    }
    progress(&format!("runtime by hand: {} single containers", args.runs));
    let mut by_hand = Vec::new();
    for i in 0..args.runs {
        by_hand.push(by_hand_one(node, cell, &format!("hand-{i}")).await?);
    }
    progress(&format!("scheduler + cell: a burst of {}", args.burst));
    let t0 = Instant::now();
    sched.desire_lrp(desired("burst", args.burst)).await?;
    until_running(sched, "burst", args.burst as usize).await?;
    let platform_secs = t0.elapsed().as_secs_f64();
    gone(sched, rep, "burst").await?;
    progress(&format!("runtime by hand: a burst of {}", args.burst));
    let t0 = Instant::now();
    let names: Vec<String> = (0..args.burst).map(|i| format!("burst-hand-{i}")).collect();
    let runs = names.iter().map(|name| by_hand_one(node, cell, name));
    for r in futures_util::future::join_all(runs).await {
        r?;
    }
    let by_hand_secs = t0.elapsed().as_secs_f64();
    let n = f64::from(args.burst);
    let burst = Burst {
        instances: args.burst,
        platform_secs,
        platform_per_sec: n / platform_secs,
        runtime_by_hand_secs: by_hand_secs,
        runtime_by_hand_per_sec: n / by_hand_secs,
    };
    Ok((platform, by_hand, burst))
}

async fn until_running(sched: &SchedulerStore, guid: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let actual = sched.actual_lrps(Some(guid)).await?;
        if actual.len() == n && actual.iter().all(|a| a.state == ActualState::Running) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{guid}: not running after 120 s: {actual:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn gone(sched: &SchedulerStore, rep: &Rep, guid: &str) -> anyhow::Result<()> {
    sched.remove_desired_lrp(guid).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sched.actual_lrps(Some(guid)).await?.is_empty() || !rep.is_empty().await {
        ensure!(Instant::now() < deadline, "{guid}: its instances did not go within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The container the cell would make for one instance: created, started, its port polled
/// every 5 ms until it answers; then destroyed (not timed).
async fn by_hand_one(node: &Arc<Node>, cell: &CellConfig, guid: &str) -> anyhow::Result<Duration> {
    let d = desired(guid, 1);
    let instance_guid = uuid_like(guid);
    let request = hearth_cell::instance::plan(&d, &ActualLrpKey::ordinary(guid, 0), &instance_guid, cell.disk_limits)
        .map_err(anyhow::Error::msg)?;
    let t0 = Instant::now();
    let info = node.create(&request).await?;
    let env = hearth_cell::instance::instance_env(hearth_cell::instance::host_ip(), info.network.as_ref());
    let answered = async {
        node.runtime().start_with_env(&info.id, &env).await?;
        let address = info.network.as_ref().context("no network")?.address;
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect((address, 8080)).await.is_err() {
            ensure!(Instant::now() < deadline, "the container's port did not answer within 60 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(t0.elapsed())
    }
    .await;
    node.destroy(&info.id).await?;
    answered
}

/// A guid-shaped id made of `name` (container ids are `lrp-<guid>`).
fn uuid_like(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let hex = format!("{hex:0<32}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
