//! `hearth-bench push`: the time from `hearth push` to the first 200 through the router,
//! for a small static site and for a 2,000-file one, broken down into the push's phases
//! (manifest, upload, stage, start, routable — read from the moments the push prints each
//! step), beside the bare minimum done by hand in the same run: copy the files, start the
//! same kind of web server (`python3 -m http.server`, the stack's python), first 200; and
//! its staging beside the same buildpack's scripts run by hand on a copy of the site. It
//! also re-pushes the big site after changing one file and reports the bytes the push
//! sent (only the changed file should travel).
//!
//! Runs the real `hearth` binary next to this one (`cargo build --release -p hearth
//! -p hearth-bench`) as `hearth server` on loopback with a fresh data and node directory;
//! needs root (containers).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::Serialize;

use crate::progress;
use crate::report::Machine;

const PASSWORD: &str = "bench-admin-password";
const DOMAIN: &str = "apps.bench.internal";

/// Push-to-first-request of a static site beside serving the same files by hand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Pushes of each site (each a new app)
    #[arg(long, value_name = "N", default_value_t = 3)]
    runs: usize,
    /// Files in the big site
    #[arg(long, value_name = "N", default_value_t = 2000)]
    files: usize,
}

/// One push, in seconds from the moment `hearth push` was started.
#[derive(Debug, Clone, Default, Serialize)]
struct Phases {
    manifest: f64,
    upload: f64,
    stage: f64,
    start: f64,
    /// From the push's return to the first 200 (0 when the app answered before it returned).
    routable: f64,
    first_200: f64,
    /// Bytes the push said it sent.
    bytes_sent: Option<u64>,
}

#[derive(Debug, Serialize)]
struct SiteResult {
    site: String,
    files: usize,
    pushes: Vec<Phases>,
    by_hand_s: Vec<f64>,
    /// Median push-to-first-200 over the median by-hand time.
    ratio: f64,
    /// The same buildpack's scripts run by hand on a copy of the site (detect, supply,
    /// finalize, release), seconds.
    stage_by_hand_s: Vec<f64>,
    /// Median stage phase of the pushes over the median by-hand staging.
    stage_ratio: f64,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    sites: Vec<SiteResult>,
    /// The big site pushed again after one of its files changed.
    repush_one_change: Phases,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A GET of `/` at `addr` with `Host: host`: the status, or 0 when nothing answered.
fn status(addr: &str, host: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return 0 };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).is_err() {
        return 0;
    }
    std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Polls until `addr` answers 200 for `host`; the instant it did.
fn until_200(addr: &str, host: &str, limit: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if status(addr, host) == 200 {
            return Ok(Instant::now());
        }
        ensure!(Instant::now() < deadline, "{host} did not answer 200 within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_site(dir: &Path, files: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("public"))?;
    std::fs::write(dir.join("Staticfile"), "root: public\n")?;
    std::fs::write(dir.join("public/index.html"), "<h1>bench</h1>\n")?;
    for i in 1..files {
        let sub = dir.join("public").join(format!("d{}", i % 20));
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join(format!("f{i}.txt")), format!("file {i} of the benchmark site\n").repeat(8))?;
    }
    Ok(())
}

/// The `hearth server` under test and the client's home.
pub(crate) struct Platform {
    server: Child,
    hearth: PathBuf,
    root: PathBuf,
    addr: String,
}

impl Platform {
    pub(crate) fn start(root: &Path) -> anyhow::Result<Platform> {
        let hearth = std::env::current_exe()?.with_file_name("hearth");
        ensure!(hearth.exists(), "{} is missing: cargo build --release -p hearth -p hearth-bench", hearth.display());
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(root.join("server.log"))?;
        let server = Command::new(&hearth)
            .args(["server", "--data-dir"])
            .arg(root.join("data"))
            .arg("--node-dir")
            .arg(root.join("node"))
            .args(["--listen", &addr, "--app-domain", DOMAIN])
            .env("HEARTH_ADMIN_PASSWORD", PASSWORD)
            .env("HEARTH_CGROUP_PARENT", "hearth-bench-push")
            // No sample app pushed in the background while pushes are timed.
            .env("HEARTH_NO_SAMPLE_APP", "true")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start hearth server")?;
        let platform = Platform { server, hearth, root: root.to_path_buf(), addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while status(&platform.addr, "localhost") != 200 {
            ensure!(
                Instant::now() < deadline,
                "hearth server did not come up; see {}",
                root.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = format!("http://{}", platform.addr);
        for args in [
            vec!["login", "-a", &url, "-u", "admin", "-p", PASSWORD],
            vec!["create-org", "bench"],
            vec!["target", "-o", "bench"],
            vec!["create-space", "bench"],
            vec!["target", "-s", "bench"],
        ] {
            let out = platform.client(&args).output()?;
            ensure!(out.status.success(), "hearth {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(platform)
    }

    pub(crate) fn client(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.hearth);
        command.args(args).env("HEARTH_HOME", self.root.join("home"));
        command
    }

    /// Pushes `dir` as `name`, timing each phase by when the push prints it.
    fn push(&self, name: &str, dir: &Path) -> anyhow::Result<Phases> {
        let host = format!("{name}.{DOMAIN}");
        let started = Instant::now();
        let mut child = self
            .client(&["push", name, "-p", dir.to_str().context("path")?])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (addr, poll_host) = (self.addr.clone(), host.clone());
        let poller = std::thread::spawn(move || until_200(&addr, &poll_host, Duration::from_secs(120)));
        let mut seen: Vec<(String, f64)> = Vec::new();
        for line in BufReader::new(child.stdout.take().context("stdout")?).lines() {
            seen.push((line?, started.elapsed().as_secs_f64()));
        }
        let exit = child.wait()?;
        let returned = started.elapsed().as_secs_f64();
        if !exit.success() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut stderr)?;
            bail!("hearth push {name} failed: {stderr}");
        }
        let first_200 = poller.join().map_err(|_| anyhow::anyhow!("poller panicked"))??.duration_since(started);
        let at = |prefix: &str| seen.iter().find(|(l, _)| l.trim_start().starts_with(prefix)).map(|(_, t)| *t);
        let (upload, staging, waiting) = (
            at("Uploading files").context("no upload line")?,
            at("Staging app").context("no staging line")?,
            at("Waiting for app").context("no waiting line")?,
        );
        let bytes_sent = seen
            .iter()
            .find(|(l, _)| l.starts_with("Uploading files"))
            .and_then(|(l, _)| l.split(';').nth(2)?.split_whitespace().next()?.parse().ok());
        Ok(Phases {
            manifest: upload,
            upload: staging - upload,
            stage: waiting - staging,
            start: returned - waiting,
            routable: (first_200.as_secs_f64() - returned).max(0.0),
            first_200: first_200.as_secs_f64(),
            bytes_sent,
        })
    }
}

impl Platform {
    /// Deletes every app and waits (a minute at most) until no container is left: a
    /// stopped server keeps its instances running, as a restart must.
    fn delete_apps(&self) {
        let json = |args: &[&str]| -> Option<serde_json::Value> {
            let out = self.client(args).output().ok()?;
            serde_json::from_slice(&out.stdout).ok()
        };
        let names: Vec<String> = json(&["apps", "--json"])
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a["app"]["name"].as_str().map(str::to_string))
            .collect();
        for name in &names {
            let _ = self.client(&["delete", name, "-f"]).output();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && json(&["containers", "list", "--json"])
                .and_then(|v| v.as_array().map(|a| !a.is_empty()))
                .unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.delete_apps();
        let _ = Command::new("kill").args(["-TERM", &self.server.id().to_string()]).status();
        let _ = self.server.wait();
    }
}

/// Copies the site and runs `buildpack`'s scripts on it by hand, as the builder does in its
/// container (detect, supply, finalize, release): seconds.
fn stage_by_hand(buildpack: &str, site: &Path, work: &Path) -> anyhow::Result<f64> {
    let files = hearth_api::builtin_buildpack_files(buildpack).context("no such built-in buildpack")?;
    let dir = work.join("stage-by-hand");
    let _ = std::fs::remove_dir_all(&dir);
    let bp = dir.join("buildpack");
    for (path, text) in files {
        let file = bp.join(path);
        std::fs::create_dir_all(file.parent().context("a buildpack file has a parent")?)?;
        std::fs::write(&file, text)?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let (app, cache, deps, profile) = (dir.join("app"), dir.join("cache"), dir.join("deps"), dir.join("profile.d"));
    for d in [&cache, &deps.join("0"), &profile] {
        std::fs::create_dir_all(d)?;
    }
    let started = Instant::now();
    ensure!(Command::new("cp").arg("-r").arg(site).arg(&app).status()?.success(), "cp -r failed");
    let run = |script: &str, args: &[&Path]| -> anyhow::Result<()> {
        let out = Command::new(bp.join("bin").join(script)).args(args).env("CF_STACK", "cflinuxfs4").output()?;
        ensure!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    run("detect", &[&app])?;
    run("supply", &[&app, &cache, &deps, Path::new("0")])?;
    run("finalize", &[&app, &cache, &deps, Path::new("0"), &profile])?;
    run("release", &[&app])?;
    Ok(started.elapsed().as_secs_f64())
}

/// Copy the files, start `python3 -m http.server` on them, first 200: seconds.
fn by_hand(site: &Path, work: &Path) -> anyhow::Result<f64> {
    let copy = work.join("by-hand");
    let _ = std::fs::remove_dir_all(&copy);
    let port = free_port()?;
    let started = Instant::now();
    ensure!(Command::new("cp").arg("-r").arg(site).arg(&copy).status()?.success(), "cp -r failed");
    let mut server = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(copy.join("public"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("python3 -m http.server")?;
    let answered = until_200(&format!("127.0.0.1:{port}"), "localhost", Duration::from_secs(30));
    let _ = server.kill();
    let _ = server.wait();
    Ok(answered?.duration_since(started).as_secs_f64())
}

pub fn main(args: Args) -> anyhow::Result<()> {
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(nix_is_root(), "hearth-bench push runs containers: run it as root");
    let machine = Machine::detect();
    let work = std::env::temp_dir().join(format!("hearth-bench-push-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run(&args, &work, machine);
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

pub(crate) fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn run(args: &Args, work: &Path, machine: Machine) -> anyhow::Result<Report> {
    progress("starting hearth server");
    let platform = Platform::start(work)?;
    let mut sites = Vec::new();
    for (label, files) in [("small", 1), ("big", args.files.max(2))] {
        let dir = work.join(format!("site-{label}"));
        write_site(&dir, files)?;
        let (mut pushes, mut hand, mut stage_hand) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..args.runs {
            progress(&format!("{label} site ({files} files): push {} of {}", run + 1, args.runs));
            pushes.push(platform.push(&format!("{label}{run}"), &dir)?);
            hand.push(by_hand(&dir, work)?);
            stage_hand.push(stage_by_hand("staticfile_buildpack", &dir, work)?);
        }
        let ratio = median(pushes.iter().map(|p| p.first_200).collect()) / median(hand.clone());
        let stage_ratio = median(pushes.iter().map(|p| p.stage).collect()) / median(stage_hand.clone());
        sites.push(SiteResult {
            site: label.into(),
            files,
            pushes,
            by_hand_s: hand,
            ratio,
            stage_by_hand_s: stage_hand,
            stage_ratio,
        });
    }
    progress("big site: one file changed, pushed again");
    let big = work.join("site-big");
    std::fs::write(big.join("public/index.html"), "<h1>bench, changed</h1>\n")?;
    let repush_one_change = platform.push("big0", &big)?;
    Ok(Report { machine, sites, repush_one_change })
}

fn print_table(report: &Report) {
    let m = &report.machine;
    println!(
        "push to first 200 through the router ({} CPUs, load before {:.2})",
        m.cpus,
        m.load_average_before.unwrap_or(f64::NAN)
    );
    println!(
        "{:<6} {:>6} {:>9} {:>7} {:>7} {:>7} {:>9} {:>10} {:>9} {:>7} {:>13} {:>11}",
        "site",
        "files",
        "manifest",
        "upload",
        "stage",
        "start",
        "routable",
        "first 200",
        "by hand",
        "ratio",
        "stage by hand",
        "stage ratio"
    );
    for s in &report.sites {
        let med = |f: fn(&Phases) -> f64| median(s.pushes.iter().map(f).collect());
        println!(
            "{:<6} {:>6} {:>8.2}s {:>6.2}s {:>6.2}s {:>6.2}s {:>8.2}s {:>9.2}s {:>8.3}s {:>6.1}x {:>12.3}s {:>10.1}x",
            s.site,
            s.files,
            med(|p| p.manifest),
            med(|p| p.upload),
            med(|p| p.stage),
            med(|p| p.start),
            med(|p| p.routable),
            med(|p| p.first_200),
            median(s.by_hand_s.clone()),
            s.ratio,
            median(s.stage_by_hand_s.clone()),
            s.stage_ratio
        );
    }
    let r = &report.repush_one_change;
    println!(
        "re-push of the big site after changing one file: {} bytes sent, the push took {:.2}s",
        r.bytes_sent.map_or("?".into(), |b| b.to_string()),
        r.manifest + r.upload + r.stage + r.start
    );
    println!("(medians; ratio = push-to-first-200 / copy + start python3 -m http.server + first 200;");
    println!(" stage ratio = the push's staging / the same buildpack scripts run by hand on a copy)");
}
