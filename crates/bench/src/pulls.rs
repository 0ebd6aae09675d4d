//! `hearth-bench pulls`: a cold pull of a ~50 MB multi-layer image from a `docker-registry`
//! on a loopback port, through hearth-images into a store holding none of its layers, beside
//! `skopeo copy` of the same image into a fresh OCI layout directory, alternating, in the same
//! run. Like the server, Hearth keeps one store and one puller across pulls; between runs
//! (untimed) the image is removed and its layers collected, so every pull is cold.
//!
//! The image is built here, deterministically: a busybox-static layer and N layers of
//! pseudo-random (incompressible) bytes, gzip-compressed, pushed with plain HTTP requests.
//! Everything talks to 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hearth_images::{Digest, PullOptions, Puller, RegistryConfig, Store, StoreConfig};
use serde::Serialize;
use serde_json::json;

use crate::progress;
use crate::report::Machine;
use crate::stats::{Summary, ratio};

const REPOSITORY: &str = "bench/img";
const TAG: &str = "v1";

/// A cold pull of a ~50 MB image from a loopback registry: hearth-images beside `skopeo copy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Pulls per tool (alternating)
    #[arg(long, value_name = "N", default_value_t = 11)]
    runs: usize,
    /// Layers of random bytes (besides the busybox layer)
    #[arg(long, value_name = "N", default_value_t = 5)]
    layers: usize,
    /// Bytes of random data per layer, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 9.5)]
    layer_mib: f64,
}

#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    machine: Machine,
    image: ImageInfo,
    results: Vec<Target>,
    /// Median Hearth time / median skopeo time (below 1: Hearth is faster).
    hearth_over_skopeo: Option<f64>,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct ImageInfo {
    reference: String,
    layers: usize,
    compressed_bytes: u64,
    build_and_push_secs: f64,
}

#[derive(Serialize)]
struct Target {
    name: String,
    version: Option<String>,
    #[serde(flatten)]
    summary: Option<Summary>,
    /// The tool's own CPU time (user + system) per pull, averaged over the runs.
    cpu_ms_per_pull: Option<f64>,
    /// The registry's CPU time per pull while serving this tool, averaged over the runs.
    registry_cpu_ms_per_pull: Option<f64>,
}

/// CPU time spent over a tool's runs: its own and the registry's.
#[derive(Default)]
struct Cpu {
    own: Option<Duration>,
    registry: Option<Duration>,
}

impl Cpu {
    /// Runs `f`, adding what `own` (a CPU clock) and the registry used meanwhile.
    fn count<T>(&mut self, own: fn() -> Option<Duration>, registry: u32, f: impl FnOnce() -> T) -> T {
        let before = (own(), crate::cpu::time_of(registry));
        let out = f();
        let after = (own(), crate::cpu::time_of(registry));
        let add = |sum: Option<Duration>, a: Option<Duration>, b: Option<Duration>| match (sum, a, b) {
            (sum, Some(a), Some(b)) => Some(sum.unwrap_or_default() + b.saturating_sub(a)),
            _ => None,
        };
        self.own = add(self.own, before.0, after.0);
        self.registry = add(self.registry, before.1, after.1);
        out
    }

    fn per_pull(total: Option<Duration>, runs: usize) -> Option<f64> {
        total.map(|t| t.as_secs_f64() * 1000.0 / runs as f64)
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.layer_mib > 0.0, "--layer-mib must be positive");
    check_no_proxy()?;
    let machine = Machine::detect();
    let base = tempdir()?;
    let registry = Registry::start(&base.0.join("registry"))?;
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    progress("building and pushing the image");
    let started = Instant::now();
    let layers = build_layers(args.layers, (args.layer_mib * 1024.0 * 1024.0) as usize)?;
    let compressed_bytes = tokio.block_on(push(&registry.host, &layers))?;
    let reference = format!("{}/{REPOSITORY}:{TAG}", registry.host);
    let image = ImageInfo {
        reference: reference.clone(),
        layers: layers.len(),
        compressed_bytes,
        build_and_push_secs: started.elapsed().as_secs_f64(),
    };
    drop(layers);

    let (mut hearth, mut skopeo) = (Vec::new(), Vec::new());
    let (mut hearth_cpu, mut skopeo_cpu) = (Cpu::default(), Cpu::default());
    let registry_pid = registry.child.id();
    // No grace period: the layers a run stored are collected right after it.
    let store_config = StoreConfig { gc_grace: Duration::ZERO, ..Default::default() };
    let store = Store::open_with(base.0.join("hearth-store"), store_config)?;
    let config = RegistryConfig { insecure_registries: vec![registry.host.clone()], ..Default::default() };
    let puller = Puller::new(store.clone(), config);
    for run in 1..=args.runs {
        progress(&format!("run {run} of {}: hearth-images", args.runs));
        let pulled = hearth_cpu
            .count(crate::cpu::process_time, registry_pid, || tokio.block_on(hearth_pull(&puller, &reference)));
        hearth.push(pulled?);
        store.remove_image(&reference)?;
        store.gc()?;
        ensure!(store.layers()?.is_empty(), "the store still holds layers after collecting them");

        progress(&format!("run {run} of {}: skopeo copy", args.runs));
        let dir = base.0.join(format!("skopeo-{run}"));
        skopeo.push(skopeo_cpu.count(crate::cpu::children_time, registry_pid, || skopeo_copy(&dir, &reference))?);
        let _ = std::fs::remove_dir_all(&dir);
    }

    let target = |name: &str, version, samples: &[Duration], cpu: &Cpu| Target {
        name: name.into(),
        version,
        summary: Summary::of(samples),
        cpu_ms_per_pull: Cpu::per_pull(cpu.own, samples.len()),
        registry_cpu_ms_per_pull: Cpu::per_pull(cpu.registry, samples.len()),
    };
    let results = vec![
        target("hearth-images pull (cold store)", None, &hearth, &hearth_cpu),
        target("skopeo copy docker:// -> oci:", skopeo_version(), &skopeo, &skopeo_cpu),
    ];
    let median = |i: usize| results[i].summary.as_ref().map(|s| s.median_ms);
    let report = Report {
        benchmark: "pulls",
        machine,
        image,
        hearth_over_skopeo: ratio(median(0), median(1)),
        results,
        notes: vec![
            "both pull every blob over plain HTTP from the same docker-registry on 127.0.0.1; runs alternate \
             (Hearth, skopeo, Hearth, ...); skopeo (a new process each time, as it is run) copies into a fresh \
             directory; Hearth pulls through one puller into one store, as the server keeps them, and the \
             image is removed and its layers collected after each run (untimed), so every pull is cold; its \
             first pull also builds the registry client, and later ones reuse its connections"
                .into(),
            "Hearth also decompresses and unpacks every layer into its store and verifies diff ids; skopeo \
             only writes the compressed blobs into an OCI layout, so Hearth does more work"
                .into(),
            "cpu ms = the tool's user+system CPU per pull (Hearth: this process, which does nothing else \
             meanwhile; skopeo: the waited child); registry cpu ms = the registry's over the same runs; \
             /proc's 10 ms ticks summed over the runs, then averaged; the registry shares these CPUs"
                .into(),
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_table());
    }
    Ok(())
}

/// Refuses to run if a proxy could carry loopback requests elsewhere.
fn check_no_proxy() -> anyhow::Result<()> {
    let var = |n: &str| std::env::var(n).or_else(|_| std::env::var(n.to_lowercase())).ok();
    let proxied = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"].iter().any(|n| var(n).is_some_and(|v| !v.is_empty()));
    let exempt = var("NO_PROXY").is_some_and(|v| v.split(',').any(|h| h.trim() == "127.0.0.1" || h.trim() == "*"));
    ensure!(!proxied || exempt, "a proxy is configured: set NO_PROXY=127.0.0.1 so pulls stay on loopback");
    Ok(())
}

async fn hearth_pull(puller: &Puller, reference: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    puller.pull(reference, &PullOptions::default()).await.context("hearth-images pull")?;
    Ok(started.elapsed())
}

fn skopeo_copy(dir: &Path, reference: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:{TAG}", dir.display()))
        .env("NO_PROXY", "127.0.0.1")
        .stdin(Stdio::null())
        .output()
        .context("running skopeo (apt-get install skopeo)")?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!("skopeo copy: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(elapsed)
}

fn skopeo_version() -> Option<String> {
    let out = Command::new("skopeo").arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
}

/// One gzip layer: the blob and its uncompressed tar's digest.
struct Layer {
    blob: Vec<u8>,
    digest: String,
    diff_id: String,
}

impl Layer {
    fn gzip(tar: Vec<u8>) -> anyhow::Result<Layer> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar)?;
        let blob = gz.finish()?;
        Ok(Layer { digest: Digest::of(&blob).to_string(), diff_id: Digest::of(&tar).to_string(), blob })
    }
}

fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size as u64);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The busybox layer first, then `count` layers of four files of pseudo-random bytes each.
fn build_layers(count: usize, bytes: usize) -> anyhow::Result<Vec<Layer>> {
    let busybox = std::fs::read("/bin/busybox").context("/bin/busybox: apt-get install busybox-static")?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), "bin", &b""[..])?;
    tar.append_data(&mut header(tar::EntryType::Regular, busybox.len(), 0o755), "bin/busybox", &busybox[..])?;
    for applet in ["sh", "true", "ls", "cat"] {
        tar.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), format!("bin/{applet}"), "busybox")?;
    }
    let mut layers = vec![Layer::gzip(tar.into_inner()?)?];
    for n in 0..count {
        let mut tar = tar::Builder::new(Vec::new());
        let dir = format!("data/layer-{n}");
        tar.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), "data", &b""[..])?;
        tar.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), &dir, &b""[..])?;
        for f in 0..4 {
            let data = random_bytes((n * 4 + f) as u64, bytes / 4);
            tar.append_data(
                &mut header(tar::EntryType::Regular, data.len(), 0o644),
                format!("{dir}/{f}.bin"),
                &data[..],
            )?;
        }
        layers.push(Layer::gzip(tar.into_inner()?)?);
    }
    Ok(layers)
}

/// Deterministic, incompressible bytes (splitmix64).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x4845_4152_5448;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Pushes the layers, a config and an OCI manifest; returns the compressed size.
async fn push(host: &str, layers: &[Layer]) -> anyhow::Result<u64> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()}
    }))?;
    let config_digest = Digest::of(&config).to_string();
    for (blob, digest) in layers.iter().map(|l| (&l.blob, &l.digest)).chain([(&config, &config_digest)]) {
        let url = format!("http://{host}/v2/{REPOSITORY}/blobs/uploads/");
        let started = client.post(&url).send().await?.error_for_status()?;
        let location = started.headers().get("location").context("no upload location")?.to_str()?.to_string();
        let location =
            if location.starts_with('/') { format!("http://{host}{location}") } else { location.to_string() };
        ensure!(location.starts_with(&format!("http://{host}/")), "the registry sent the upload elsewhere: {location}");
        let separator = if location.contains('?') { '&' } else { '?' };
        client
            .put(format!("{location}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(blob.clone())
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("pushing {digest}"))?;
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.digest, "size": l.blob.len()
        })).collect::<Vec<_>>()
    }))?;
    client
        .put(format!("http://{host}/v2/{REPOSITORY}/manifests/{TAG}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await?
        .error_for_status()
        .context("pushing the manifest")?;
    Ok(layers.iter().map(|l| l.blob.len() as u64).sum::<u64>() + config.len() as u64)
}

/// A `docker-registry` on a free loopback port, serving from a directory; stopped when dropped.
struct Registry {
    host: String,
    child: Child,
}

impl Registry {
    fn start(dir: &Path) -> anyhow::Result<Registry> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\nhttp:\n  addr: {host}\n  secret: hearth-bench\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (apt-get install docker-registry)")?;
        let registry = Registry { host, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = TcpStream::connect(&registry.host) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return Ok(registry);
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
                bail!("docker-registry did not start: {}", log.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This run's directory; removed when dropped.
struct TempDir(PathBuf);

fn tempdir() -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("hearth-bench-pulls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(TempDir(dir))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Report {
    fn to_table(&self) -> String {
        let m = &self.machine;
        let i = &self.image;
        let mut out = format!(
            "hearth-bench pulls on {} CPU(s){}{}\nimage {} : {} layers, {:.1} MB compressed (built and pushed in \
             {:.1} s)\n\n",
            m.cpus,
            m.cpu_model.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
            m.load_average_before.map(|l| format!(", load average {l:.2} before the run")).unwrap_or_default(),
            i.reference,
            i.layers,
            i.compressed_bytes as f64 / 1e6,
            i.build_and_push_secs,
        );
        out += &format!(
            "{:<36} {:>5} {:>10} {:>10} {:>10} {:>8} {:>13}  version\n",
            "tool", "runs", "median ms", "min ms", "max ms", "cpu ms", "registry cpu"
        );
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
        for t in &self.results {
            if let Some(s) = &t.summary {
                out += &format!(
                    "{:<36} {:>5} {:>10.1} {:>10.1} {:>10.1} {:>8} {:>13}  {}\n",
                    t.name,
                    s.runs,
                    s.median_ms,
                    s.min_ms,
                    s.max_ms,
                    ms(t.cpu_ms_per_pull),
                    ms(t.registry_cpu_ms_per_pull),
                    t.version.as_deref().unwrap_or("this build")
                );
            }
        }
        let r = self.hearth_over_skopeo.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        out += &format!("\nmedian ratio Hearth/skopeo {r} (below 1: Hearth is faster)\n\nnotes:\n");
        for note in &self.notes {
            out += &format!("- {note}\n");
        }
        out
    }
}
