//! `hearth-bench containers`: the whole life of a container that runs `/bin/true` —
//! create, start, wait for its end, destroy — through Hearth's `Runtime` (with the real
//! `hearth` binary as its helper), beside `runc run` and `crun run` of an equivalent bundle
//! (the same busybox rootfs, a `runc spec` config running `/bin/true`) in the same run.
//!
//! crun 1.8 refuses hybrid cgroup hosts (v1 controllers plus a cgroup2 mount). On such a
//! host it runs inside `unshare -m` with the cgroup2 mount unmounted, driven by this
//! binary's hidden `time-loop` subcommand, so the namespace setup is not in its times.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hearth_containers::{
    ContainerId, ContainerSpec, ExitStatus, IdMap, NetworkConfig, NetworkSpec, Placement, Runtime, RuntimeConfig,
    cgroup, network::PortMapping, oci,
};
use serde::Serialize;

use crate::progress;
use crate::report::Machine;
use crate::stats::{Summary, ratio};

const DEFAULT_HEARTH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/hearth");

/// Create + start + run `/bin/true` + destroy: Hearth's runtime beside `runc run` and `crun run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Measured containers per runtime
    #[arg(long, value_name = "N", default_value_t = 30)]
    iterations: usize,
    /// Containers per runtime run first and not recorded
    #[arg(long, value_name = "N", default_value_t = 3)]
    warmup: usize,
    /// The `hearth` binary the runtime runs as its helper (`cargo build --release -p hearth`)
    #[arg(long, env = "HEARTH_BINARY", value_name = "PATH", default_value = DEFAULT_HEARTH)]
    hearth_binary: PathBuf,
}

/// Runs a command N times and prints each run's nanoseconds, one per line.
#[derive(Debug, clap::Args)]
pub struct TimeLoopArgs {
    #[arg(long, value_name = "N")]
    iterations: usize,
    /// The command; `{i}` in an argument becomes the run's number
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The hidden `time-loop` subcommand. A failed run prints `error <its first stderr line>`.
pub fn time_loop(args: TimeLoopArgs) -> anyhow::Result<()> {
    for i in 0..args.iterations {
        let argv: Vec<String> = args.command.iter().map(|a| a.replace("{i}", &i.to_string())).collect();
        let started = Instant::now();
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {}", argv[0]))?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            println!("error {}", first_line(&out.stderr, &out.status.to_string()));
            std::process::exit(1);
        }
        println!("{}", elapsed.as_nanos());
    }
    Ok(())
}

fn first_line(bytes: &[u8], fallback: &str) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(fallback).to_string()
}

#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    machine: Machine,
    iterations: usize,
    warmup: usize,
    hearth_binary: String,
    results: Vec<Target>,
    /// Median latency of Hearth divided by each runtime's (below 1: Hearth is faster).
    ratios: Ratios,
    /// Where Hearth's time goes, by `Runtime` call (medians).
    hearth_phases: Phases,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Target {
    name: String,
    version: Option<String>,
    #[serde(flatten)]
    summary: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Ratios {
    /// Against runc and crun running the same bundle (Hearth's spec).
    hearth_over_runc: Option<f64>,
    hearth_over_crun: Option<f64>,
    /// Against runc and crun running `runc spec`'s bundle, which asks for far less.
    hearth_over_runc_minimal: Option<f64>,
    hearth_over_crun_minimal: Option<f64>,
}

#[derive(Serialize)]
struct Phases {
    create_ms: f64,
    start_ms: f64,
    wait_ms: f64,
    destroy_ms: f64,
    /// Create of a networked container (veth on a bridge, address, NAT, one port mapping).
    networked_create_ms: Option<f64>,
    /// Median of `hearth --version`: the floor of one helper process (Hearth spawns two
    /// per container: the keeper and the delete helper).
    helper_exec_ms: Option<f64>,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    ensure!(args.iterations >= 1, "--iterations must be at least 1");
    let helper = &args.hearth_binary;
    ensure!(
        helper.is_file(),
        "the hearth binary is missing at {}: build it with `cargo build --release -p hearth`, or point \
         --hearth-binary / HEARTH_BINARY at one",
        helper.display()
    );
    let helper = helper.canonicalize().with_context(|| format!("resolving {}", helper.display()))?;
    let machine = Machine::detect();
    let base = Base::create()?;
    let rootfs = busybox_rootfs(&base.0)?;
    let total = args.warmup + args.iterations;

    progress(&format!("Hearth runtime: {total} containers ({} warm-up)", args.warmup));
    let cgroup_parent = format!("hearth-bench-{}", std::process::id());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let hearth = tokio.block_on(hearth_runs(&base.0, &helper, &cgroup_parent, &rootfs, total, None));
    progress(&format!("Hearth runtime, networked: {total} containers ({} warm-up)", args.warmup));
    let one_port =
        NetworkSpec { port_mappings: vec![PortMapping { container_port: 8080, host_port: 0 }], egress: vec![] };
    let networked = tokio.block_on(hearth_runs(&base.0, &helper, &cgroup_parent, &rootfs, total, Some(one_port)));
    for (dir, e) in cgroup::sweep(Path::new(&format!("/{cgroup_parent}"))) {
        eprintln!("hearth-bench: could not remove cgroup {}: {e}", dir.display());
    }
    let bench_network = bench_network();
    let _ = Command::new("ip").args(["link", "del", &bench_network.bridge]).output();
    for family in ["inet", "bridge"] {
        let _ = Command::new("nft").args(["delete", "table", family, &bench_network.table]).output();
    }
    let hearth = hearth?;
    let networked = networked.map(|runs| runs[args.warmup..].to_vec());
    let networked_create = networked.as_ref().ok().and_then(|runs| {
        let samples: Vec<Duration> = runs.iter().map(|p| p[0]).collect();
        Summary::of(&samples).map(|s| s.median_ms)
    });
    let hearth_times: Vec<Duration> = hearth[args.warmup..].iter().map(|p| p.iter().sum()).collect();
    let phase = |i: usize| {
        let samples: Vec<Duration> = hearth[args.warmup..].iter().map(|p| p[i]).collect();
        Summary::of(&samples).map_or(0.0, |s| s.median_ms)
    };
    let exec_times: Vec<Duration> =
        (0..10).filter_map(|_| timed(Command::new(&helper).arg("--version")).ok()).collect();

    let minimal = bundle(&base.0, &rootfs)?;
    let production = production_bundle(&base.0, &rootfs, &format!("{cgroup_parent}-oci"))?;
    let state = |name: &str| base.0.join(name).to_string_lossy().to_string();

    progress(&format!("runc run, Hearth's bundle: {total} containers"));
    let runc = runc_runs(&state("runc-state"), &production, total).map(|t| t[args.warmup..].to_vec());
    progress(&format!("crun run, Hearth's bundle: {total} containers"));
    let crun = crun_runs(&state("crun-state"), &production, total).map(|t| t[args.warmup..].to_vec());
    progress(&format!("runc run, `runc spec` bundle: {total} containers"));
    let runc_minimal = runc_runs(&state("runc-state"), &minimal, total).map(|t| t[args.warmup..].to_vec());
    progress(&format!("crun run, `runc spec` bundle: {total} containers"));
    let crun_minimal = crun_runs(&state("crun-state"), &minimal, total).map(|t| t[args.warmup..].to_vec());
    for (dir, e) in cgroup::sweep(Path::new(&format!("/{cgroup_parent}-oci"))) {
        eprintln!("hearth-bench: could not remove cgroup {}: {e}", dir.display());
    }

    let target = |name: &str, program: Option<&str>, times: anyhow::Result<Vec<Duration>>| Target {
        name: name.into(),
        version: program.and_then(version),
        summary: times.as_ref().ok().and_then(|t| Summary::of(t)),
        error: times.err().map(|e| format!("{e:#}")),
    };
    let results = vec![
        target("Hearth Runtime (create+start+wait+destroy)", None, Ok(hearth_times)),
        target("runc run, Hearth's bundle", Some("runc"), runc),
        target("crun run, Hearth's bundle", Some("crun"), crun),
        target("runc run, `runc spec` bundle", Some("runc"), runc_minimal),
        target("crun run, `runc spec` bundle", Some("crun"), crun_minimal),
        target(
            "Hearth Runtime, networked (veth, NAT, 1 port)",
            None,
            networked.map(|runs| runs.iter().map(|p| p.iter().sum()).collect()),
        ),
    ];
    let median = |i: usize| results[i].summary.as_ref().map(|s| s.median_ms);
    let report = Report {
        benchmark: "containers",
        machine,
        iterations: args.iterations,
        warmup: args.warmup,
        hearth_binary: helper.display().to_string(),
        ratios: Ratios {
            hearth_over_runc: ratio(median(0), median(1)),
            hearth_over_crun: ratio(median(0), median(2)),
            hearth_over_runc_minimal: ratio(median(0), median(3)),
            hearth_over_crun_minimal: ratio(median(0), median(4)),
        },
        hearth_phases: Phases {
            create_ms: phase(0),
            start_ms: phase(1),
            wait_ms: phase(2),
            destroy_ms: phase(3),
            networked_create_ms: networked_create,
            helper_exec_ms: Summary::of(&exec_times).map(|s| s.median_ms),
        },
        results,
        notes: vec![
            "all run /bin/true from the same busybox-static rootfs (read-only), one container at a time".into(),
            "Hearth's bundle is the production spec (oci::runtime_spec): user namespace (uids 100000+), \
             loopback-only network namespace, seccomp allow-list, Garden's capabilities, masked paths, memory, CPU \
             and pids limits; runc and crun compile its seccomp profile on each run, Hearth's runtime once. The \
             `runc spec` bundle has no user namespace, no seccomp and no limits, so runc and crun do less work"
                .into(),
            "Hearth's keepers are forked by a zygote (a `hearth container-helper zygote` the first create starts \
             and the others reuse), so only the first create pays the exec of the `hearth` binary (the helper \
             floor below), and the warm-up takes that one; runc and crun pay their own exec in every run"
                .into(),
            "Hearth's phases are its public Runtime calls; the Runtime exposes no finer timing (rootfs, \
             cgroups inside libcontainer), so that split would need instrumenting crates/containers; the \
             networked run's create minus the plain one's is what networking costs"
                .into(),
            "runc and crun times include their own fork/exec from this process; crun's `unshare -m` is set up once \
             per batch and not timed"
                .into(),
            favordynmods_note(),
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_table());
    }
    Ok(())
}

/// The benchmark's own bridge, subnet, tables and ports (removed after the run).
fn bench_network() -> NetworkConfig {
    NetworkConfig {
        bridge: "hearthbench0".into(),
        subnet: "10.253.0.0/24".parse().expect("a valid subnet"),
        table: "hearth_bench".into(),
        host_ports: 63000..=63999,
    }
}

/// Create, start, wait, destroy times of each container.
async fn hearth_runs(
    base: &Path,
    helper: &Path,
    cgroup_parent: &str,
    rootfs: &Path,
    total: usize,
    network: Option<NetworkSpec>,
) -> anyhow::Result<Vec<[Duration; 4]>> {
    let runtime = Runtime::new(RuntimeConfig {
        root: base.join(if network.is_some() { "hearth-net" } else { "hearth" }),
        helper: helper.to_path_buf(),
        placement: Placement { id_map: IdMap::default(), cgroup_parent: cgroup_parent.into() },
        network: bench_network(),
    });
    let mut spec = ContainerSpec::new(rootfs, vec!["/bin/true".into()]);
    spec.network = network;
    let mut out = Vec::with_capacity(total);
    for i in 0..total {
        let id = ContainerId::new(format!("bench-{i}"))?;
        let t0 = Instant::now();
        let result = async {
            runtime.create(&id, &spec).await?;
            let t1 = Instant::now();
            runtime.start(&id).await?;
            let t2 = Instant::now();
            let exit = runtime.wait(&id).await?;
            let t3 = Instant::now();
            anyhow::Ok((t1, t2, t3, exit))
        }
        .await;
        let destroyed = runtime.destroy(&id).await;
        let t4 = Instant::now();
        let (t1, t2, t3, exit) = result.context("Hearth's runtime")?;
        destroyed.context("Hearth's runtime: destroy")?;
        ensure!(exit == ExitStatus::Code(0), "/bin/true in Hearth's runtime ended with {exit:?}");
        out.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3]);
    }
    Ok(out)
}

/// Runs `runc run` of `bundle` `total` times, each timed from this process.
fn runc_runs(state: &str, bundle: &Path, total: usize) -> anyhow::Result<Vec<Duration>> {
    let bundle = bundle.to_string_lossy();
    (0..total)
        .map(|i| {
            let name = format!("runc-{i}");
            let result = timed(Command::new("runc").args(["--root", state, "run", "--bundle", &bundle, &name]));
            if result.is_err() {
                let _ = Command::new("runc").args(["--root", state, "delete", "-f", &name]).output();
            }
            result
        })
        .collect()
}

/// Runs crun through `time-loop`, inside `unshare -m` with the cgroup2 mount unmounted
/// when the host also has cgroup v1 hierarchies.
fn crun_runs(state: &str, bundle: &Path, total: usize) -> anyhow::Result<Vec<Duration>> {
    let bundle = &*bundle.to_string_lossy();
    let me = std::env::current_exe().context("finding this binary")?;
    let mut loop_args: Vec<String> = vec![me.to_string_lossy().into(), "time-loop".into()];
    loop_args.extend(["--iterations".into(), total.to_string(), "--".into()]);
    loop_args.extend(["crun", "--root", state, "run", "--bundle", bundle, "crun-{i}"].map(String::from));
    let mut cmd = match hybrid_cgroup2_mount() {
        Some(mount) => {
            let mut cmd = Command::new("unshare");
            cmd.args(["-m", "sh", "-c", r#"m="$1"; shift; umount "$m" && exec "$@""#, "sh", &mount]);
            cmd.args(&loop_args);
            cmd
        }
        None => {
            let mut cmd = Command::new(&loop_args[0]);
            cmd.args(&loop_args[1..]);
            cmd
        }
    };
    let out = cmd.stdin(Stdio::null()).output().context("running unshare")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut times = Vec::new();
    for line in stdout.lines() {
        if let Some(error) = line.strip_prefix("error ") {
            bail!("{error}");
        }
        times.push(Duration::from_nanos(line.trim().parse().with_context(|| format!("time-loop said {line:?}"))?));
    }
    ensure!(out.status.success(), "{}", first_line(&out.stderr, &out.status.to_string()));
    ensure!(times.len() == total, "time-loop ran {} of {total}", times.len());
    Ok(times)
}

/// Whether a cgroup2 mount has `favordynmods`: without it the first write to a
/// `cgroup.procs` after a quiet spell waits for an RCU grace period (6-18 ms measured
/// here), which every runtime pays and containers created back to back mostly do not.
fn favordynmods_note() -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let on = mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("cgroup2") && l.contains("favordynmods"));
    format!(
        "cgroup2 favordynmods: {} (without it a first cgroup.procs write after a pause waits for an RCU grace \
         period, 6-18 ms measured; `mount -o remount,favordynmods` on the cgroup2 mount makes it 0.1 ms for every \
         runtime; seen here: the fast mode outlasted a remount without the option)",
        if on { "on" } else { "off" }
    )
}

/// Where cgroup2 is mounted, if the host also mounts cgroup v1 hierarchies.
fn hybrid_cgroup2_mount() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let fs_of = |l: &str| l.split_whitespace().nth(2).map(str::to_string);
    let has_v1 = mounts.lines().any(|l| fs_of(l).as_deref() == Some("cgroup"));
    let v2 = mounts.lines().find(|l| fs_of(l).as_deref() == Some("cgroup2"))?;
    has_v1.then(|| v2.split_whitespace().nth(1).unwrap_or_default().to_string())
}

fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let elapsed = started.elapsed();
    ensure!(out.status.success(), "{}", first_line(&out.stderr, &out.status.to_string()));
    Ok(elapsed)
}

fn version(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
}

/// This run's directory (0755: container uids traverse it); removed when dropped.
struct Base(PathBuf);

impl Base {
    fn create() -> anyhow::Result<Base> {
        let dir = std::env::temp_dir().join(format!("hearth-bench-containers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(Base(dir))
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A busybox-static root filesystem, as the runtime's tests build it.
fn busybox_rootfs(base: &Path) -> anyhow::Result<PathBuf> {
    let busybox = Path::new("/bin/busybox");
    ensure!(busybox.is_file(), "/bin/busybox is missing: apt-get install busybox-static");
    let root = base.join("rootfs");
    for dir in ["bin", "etc", "proc", "dev", "sys", "tmp", "home/vcap", "root"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nvcap:x:2000:2000::/home/vcap:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nvcap:x:2000:\n")?;
    Ok(root)
}

/// A bundle for runc and crun: `runc spec` (rootful), running `/bin/true` without a terminal
/// from the shared rootfs.
fn bundle(base: &Path, rootfs: &Path) -> anyhow::Result<PathBuf> {
    let dir = base.join("bundle");
    std::fs::create_dir_all(&dir)?;
    let out = Command::new("runc")
        .arg("spec")
        .arg("--bundle")
        .arg(&dir)
        .output()
        .context("runc spec (apt-get install runc)")?;
    ensure!(out.status.success(), "runc spec: {}", first_line(&out.stderr, &out.status.to_string()));
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    config["hostname"] = "bench".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(dir)
}

/// A bundle for runc and crun with the spec Hearth's runtime gives libcontainer: user
/// namespace, seccomp allow-list (as a profile; they compile it themselves), Garden's
/// capabilities, masked paths and cgroup limits under `cgroup_parent`.
fn production_bundle(base: &Path, rootfs: &Path, cgroup_parent: &str) -> anyhow::Result<PathBuf> {
    let dir = base.join("production-bundle");
    std::fs::create_dir_all(&dir)?;
    let spec = ContainerSpec::new(rootfs, vec!["/bin/true".into()]);
    let placement = Placement { id_map: IdMap::default(), cgroup_parent: cgroup_parent.into() };
    let config = oci::runtime_spec(&ContainerId::new("oci")?, &spec, &placement)?;
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    Ok(dir)
}

impl Report {
    fn to_table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "hearth-bench containers on {} CPU(s){}{}\n{} measured containers per runtime after {} warm-up; \
             helper {}\n\n",
            m.cpus,
            m.cpu_model.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
            m.load_average_before.map(|l| format!(", load average {l:.2} before the run")).unwrap_or_default(),
            self.iterations,
            self.warmup,
            self.hearth_binary,
        );
        out += &format!(
            "{:<44} {:>10} {:>10} {:>10} {:>10}  version\n",
            "runtime", "median ms", "p90 ms", "min ms", "max ms"
        );
        for t in &self.results {
            match (&t.summary, &t.error) {
                (Some(s), _) => {
                    out += &format!(
                        "{:<44} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {}\n",
                        t.name,
                        s.median_ms,
                        s.p90_ms,
                        s.min_ms,
                        s.max_ms,
                        t.version.as_deref().unwrap_or("this build")
                    )
                }
                (None, error) => out += &format!("{:<44} error: {}\n", t.name, error.as_deref().unwrap_or("no runs")),
            }
        }
        let r = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        let q = &self.ratios;
        out += &format!(
            "\nmedian ratio, same bundle: Hearth/runc {}, Hearth/crun {}; against the `runc spec` bundle: Hearth/runc \
             {}, Hearth/crun {} (below 1: Hearth is faster)\n",
            r(q.hearth_over_runc),
            r(q.hearth_over_crun),
            r(q.hearth_over_runc_minimal),
            r(q.hearth_over_crun_minimal)
        );
        let p = &self.hearth_phases;
        out += &format!(
            "Hearth's time by Runtime call (medians): create {:.2} ms, start {:.2} ms, wait {:.2} ms, destroy {:.2} \
             ms; one `hearth` exec (helper floor) {} ms; networked create {} ms\n",
            p.create_ms,
            p.start_ms,
            p.wait_ms,
            p.destroy_ms,
            r(p.helper_exec_ms),
            r(p.networked_create_ms)
        );
        out += "\nnotes:\n";
        for note in &self.notes {
            out += &format!("- {note}\n");
        }
        out
    }
}
