//! Cells as separate processes on separate networks (root, real containers): three
//! `hearth server --roles cell` processes, each in its own network namespace behind a
//! bridge, join the scheduler's cell endpoint with the join token over mutual TLS and run
//! instances that the host reaches at the cells' addresses and mapped ports (as the
//! router does). A drained cell (SIGTERM) hands over with no index ever without a running
//! copy; a killed cell is declared missing and its instances start elsewhere; a cell that
//! comes back removes what it no longer owns. A cell may act only as itself, and nothing
//! gets in without a certificate or with a wrong token.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::cells::endpoint::{self, EndpointState};
use hearth::cells::pki::Authority;
use hearth_cell::Converger;
use hearth_cell::rep::{BoxFuture, DropletSource};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{
    ActualLrp, ActualState, CellState, Config, DesiredLrp, HealthCheckType, PreferredAddress, SystemClock,
};
use tokio_util::sync::CancellationToken;

mod common;

use common::lrps::{WEB, reaches, watch_answers};

fn desired(guid: &str, instances: u32) -> DesiredLrp {
    common::lrps::desired(guid, instances, WEB, HealthCheckType::Port)
}

/// No droplets here: the instances run on the host stack.
struct NoDroplets;

impl DropletSource for NoDroplets {
    fn fetch<'a>(&'a self, layer: &'a str, _: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { anyhow::bail!("no droplet {layer} in this test") })
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).stderr(Stdio::null()).status();
}

/// A bridge on the host and, per cell, a network namespace on it with its own address.
/// Dropped (also when a test fails), it removes them and whatever the cells left: their
/// processes, mounts, loop devices and cgroups.
struct Networks {
    bridge: String,
    namespaces: Vec<String>,
    dir: PathBuf,
    cgroups: String,
}

const HOST: &str = "10.251.0.1";

fn cell_ip(i: usize) -> String {
    format!("10.251.0.{}", 10 + i)
}

impl Networks {
    fn new(tag: &str, cells: usize, dir: &Path) -> Networks {
        let bridge = format!("hrb{tag}");
        quiet(&["ip", "link", "del", &bridge]);
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&["ip", "addr", "add", &format!("{HOST}/24"), "dev", &bridge]);
        run(&["ip", "link", "set", &bridge, "up"]);
        let mut namespaces = Vec::new();
        for i in 0..cells {
            let ns = format!("hrc{tag}{i}");
            let (outside, inside) = (format!("hrv{tag}{i}"), format!("hrp{tag}{i}"));
            quiet(&["ip", "netns", "del", &ns]);
            quiet(&["ip", "link", "del", &outside]);
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside]);
            run(&["ip", "link", "set", &inside, "netns", &ns]);
            run(&["ip", "link", "set", &outside, "master", &bridge, "up"]);
            let exec = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", ns.as_str()];
                all.extend_from_slice(args);
                run(&all);
            };
            exec(&["ip", "link", "set", "lo", "up"]);
            exec(&["ip", "addr", "add", &format!("{}/24", cell_ip(i)), "dev", &inside]);
            exec(&["ip", "link", "set", &inside, "up"]);
            exec(&["ip", "route", "add", "default", "via", HOST]);
            namespaces.push(ns);
        }
        Networks { bridge, namespaces, dir: dir.to_path_buf(), cgroups: format!("hearth-rc-{}-", std::process::id()) }
    }
}

impl Drop for Networks {
    fn drop(&mut self) {
        let dir = self.dir.display().to_string();
        quiet(&["pkill", "-9", "-f", &dir]);
        for controller in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for group in std::fs::read_dir(controller.path()).into_iter().flatten().flatten() {
                if group.file_name().to_string_lossy().starts_with(&self.cgroups) {
                    quiet(&[
                        "sh",
                        "-c",
                        &format!("cat $(find {} -name cgroup.procs) | xargs -r kill -9", group.path().display()),
                    ]);
                    std::thread::sleep(Duration::from_millis(200));
                    quiet(&["sh", "-c", &format!("find {} -depth -type d -exec rmdir {{}} +", group.path().display())]);
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut points: Vec<&str> =
            mounts.lines().filter_map(|l| l.split(' ').nth(1)).filter(|p| p.starts_with(&dir)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            quiet(&["umount", "-l", point]);
        }
        let loops = Command::new("losetup").arg("-a").output().map(|o| o.stdout).unwrap_or_default();
        for line in String::from_utf8_lossy(&loops).lines().filter(|l| l.contains(&dir)) {
            if let Some(device) = line.split(':').next() {
                quiet(&["losetup", "-d", device]);
            }
        }
        for ns in &self.namespaces {
            quiet(&["ip", "netns", "del", ns]);
        }
        quiet(&["ip", "link", "del", &self.bridge]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One cell process and where it keeps its things.
struct CellProcess {
    id: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl CellProcess {
    fn start(id: &str, i: usize, ns: &str, join: &str, token: &str, dir: &Path) -> CellProcess {
        let dir = dir.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("cell.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_hearth"))
            .args(["server", "--roles", "cell", "--join", join, "--token", token, "--cell-id", id])
            .args(["--advertise-address", &cell_ip(i)])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--node-dir")
            .arg(dir.join("node"))
            .args(["--cgroup-parent", &format!("hearth-rc-{}-{id}", std::process::id())])
            .env("HEARTH_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        CellProcess { id: id.into(), dir, child: Some(child) }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cell.log")).unwrap_or_default()
    }

    /// `lrp-` containers in this cell's runtime.
    fn containers(&self) -> Vec<String> {
        let dir = self.dir.join("node/containers/containers");
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("lrp-")).collect()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        run(&["kill", signal, &pid]);
    }

    /// Waits for the process to exit; answers whether it succeeded.
    fn wait(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.success();
            }
            assert!(Instant::now() < deadline, "cell {} did not exit; its log:\n{}", self.id, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for CellProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn until<F: Fn(&[ActualLrp]) -> bool>(sched: &SchedulerStore, what: &str, cells: &[CellProcess], done: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let actual = sched.actual_lrps(Some("web")).await.unwrap();
        if done(&actual) {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = cells.iter().map(|c| format!("--- {}:\n{}", c.id, c.log())).collect();
            panic!("{what}: still {actual:#?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn running(n: usize) -> impl Fn(&[ActualLrp]) -> bool {
    move |a: &[ActualLrp]| a.len() == n && a.iter().all(|i| i.state == ActualState::Running)
}

fn on(a: &[ActualLrp], cell: &str) -> usize {
    a.iter().filter(|i| i.instance.as_ref().is_some_and(|x| x.cell_id == cell)).count()
}

/// What an instance answers at the address the store gives (the router's view).
async fn answer(a: &ActualLrp) -> String {
    assert_eq!(a.preferred_address, PreferredAddress::Host, "{a:?}");
    reaches(a).await.unwrap_or_else(|| panic!("{a:?} does not answer at its cell's address and host port"))
}

#[test]
fn cells_in_other_network_namespaces_join_run_drain_and_are_replaced() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("hearth-remote-cells-{pid}"));
    let tag = format!("{:04x}", pid % 0xffff);
    let networks = Networks::new(&tag, 3, &dir);
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
        std::fs::create_dir_all(&dir).unwrap();
        let url = match common::database_url().await {
            Some(url) => url,
            None => format!("sqlite://{}", dir.join("hearth.db").display()),
        };
        let sched = SchedulerStore::new(hearth_store::Store::open(&url).await.unwrap(), Arc::new(SystemClock));
        // Cells heartbeat every 5 s; missing after 12 s without one.
        let config = Config {
            convergence_interval: Duration::from_millis(500),
            cell_missing_after: Duration::from_secs(12),
            ..Config::default()
        };
        let converger = Converger::new(sched.clone(), config);
        let authority = Arc::new(Authority::open(&dir.join("cells")).unwrap());
        let token = authority.join_token();
        let shutdown = CancellationToken::new();
        let state = EndpointState {
            authority,
            scheduler: sched.clone(),
            converger: converger.clone(),
            logs: hearth_logs::Store::new(hearth_logs::StoreConfig::default()).unwrap(),
            droplets: Arc::new(NoDroplets),
            blobs: hearth_blobstore::BlobStore::open(&hearth_blobstore::BlobStoreConfig::Local {
                root: dir.join("blobs"),
            })
            .unwrap(),
            work_dir: dir.join("tmp"),
        };
        let addr = endpoint::start(state, &format!("{HOST}:0"), shutdown.clone()).await.unwrap();
        let join = format!("https://{addr}");
        tokio::spawn({
            let (converger, shutdown) = (converger.clone(), shutdown.clone());
            async move { converger.run(shutdown).await }
        });

        // A wrong token joins nothing.
        let wrong = token.rsplit_once('.').map(|(head, _)| format!("{head}.not-the-secret")).unwrap();
        let refused = hearth::cells::remote::join(&join, &wrong, "intruder", &dir.join("intruder")).await;
        let why = format!("{:#}", refused.expect_err("a wrong token is refused"));
        assert!(why.contains("wrong join token"), "{why}");

        let ids = ["cell-a", "cell-b", "cell-c"];
        let mut cells: Vec<CellProcess> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| CellProcess::start(id, i, &networks.namespaces[i], &join, &token, &dir))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while sched.cells().await.unwrap().iter().filter(|c| c.state == CellState::Present).count() < 3 {
            if Instant::now() > deadline {
                let logs: Vec<String> = cells.iter().map(|c| format!("--- {}:\n{}", c.id, c.log())).collect();
                panic!("the cells did not register:\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        sched.desire_lrp(desired("web", 3)).await.unwrap();
        until(&sched, "3 running, one per cell", &cells, |a| running(3)(a) && ids.iter().all(|id| on(a, id) == 1))
            .await;
        for a in sched.actual_lrps(Some("web")).await.unwrap() {
            let cell = ids.iter().position(|id| on(std::slice::from_ref(&a), id) == 1).unwrap();
            assert_eq!(a.address.as_deref(), Some(cell_ip(cell).as_str()), "reported at its cell's address");
            assert_eq!(answer(&a).await.trim(), format!("hello from {}", a.key.index));
        }

        // Another cell's certificate cannot act for cell-a; no certificate reaches nothing.
        let as_c = hearth::cells::remote::join(&join, &token, "cell-c", &cells[2].dir.join("data/cell")).await.unwrap();
        let forged = as_c
            .post(format!("{join}/v1/scheduler"))
            .json(&serde_json::json!({"call": "change_cell", "id": "cell-a", "event": "Drain"}))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403, "{}", forged.text().await.unwrap());
        let a = sched.cells().await.unwrap().into_iter().find(|c| c.id == "cell-a").unwrap();
        assert_eq!(a.state, CellState::Present, "a refused call changes nothing");
        let anonymous = reqwest::Client::builder().tls_danger_accept_invalid_certs(true).build().unwrap();
        let bare = anonymous.get(format!("{join}/v1/commands")).send().await.unwrap();
        assert_eq!(bare.status(), 401);

        // cell-a drains (SIGTERM): every index keeps a running copy that answers (the one
        // leaving or its replacement), then it exits.
        let watching = CancellationToken::new();
        let gaps = watch_answers(&sched, "web", 3, watching.clone());
        cells[0].signal("-TERM");
        assert!(cells[0].wait(Duration::from_secs(90)), "cell-a's drain failed:\n{}", cells[0].log());
        watching.cancel();
        assert_eq!(gaps.await.unwrap(), Vec::<u32>::new(), "an index had no running copy during the drain");
        until(&sched, "moved off cell-a", &cells, |a| running(3)(a) && on(a, "cell-a") == 0).await;
        assert_eq!(cells[0].containers(), Vec::<String>::new(), "cell-a left containers");
        for a in sched.actual_lrps(Some("web")).await.unwrap() {
            assert_eq!(answer(&a).await.trim(), format!("hello from {}", a.key.index));
        }

        // cell-b is killed: declared missing, its instances start on cell-c.
        cells[1].signal("-KILL");
        let _ = cells[1].wait(Duration::from_secs(10));
        until(&sched, "all on cell-c", &cells, |a| running(3)(a) && on(a, "cell-c") == 3).await;
        let b = sched.cells().await.unwrap().into_iter().find(|c| c.id == "cell-b").unwrap();
        assert_eq!(b.state, CellState::Missing);
        for a in sched.actual_lrps(Some("web")).await.unwrap() {
            assert_eq!(answer(&a).await.trim(), format!("hello from {}", a.key.index));
        }

        // cell-b comes back (its certificate kept): it removes the container it no longer owns.
        assert!(!cells[1].containers().is_empty(), "the killed cell's container outlived it");
        cells[1] = CellProcess::start("cell-b", 1, &networks.namespaces[1], &join, &token, &dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cells[1].containers().is_empty()
            || sched.cells().await.unwrap().iter().all(|c| c.id != "cell-b" || c.state != CellState::Present)
        {
            assert!(
                Instant::now() < deadline,
                "cell-b came back with {:?}:\n{}",
                cells[1].containers(),
                cells[1].log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        sched.remove_desired_lrp("web").await.unwrap();
        until(&sched, "all gone", &cells, |a| a.is_empty()).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cells[2].containers().is_empty() {
            assert!(Instant::now() < deadline, "cell-c kept {:?}:\n{}", cells[2].containers(), cells[2].log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for cell in &mut cells[1..] {
            cell.signal("-TERM");
            assert!(cell.wait(Duration::from_secs(60)), "{} did not drain:\n{}", cell.id, cell.log());
        }
        shutdown.cancel();
    });
    drop(networks);
}

/// `hearth server --cell-listen` serves the cell endpoint beside the platform and keeps
/// its CA and token across restarts; a cell joins it with the token.
#[test]
fn the_server_serves_the_cell_endpoint_and_keeps_its_token() {
    let dir = std::env::temp_dir().join(format!("hearth-cell-endpoint-{}", std::process::id()));
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
        let start = || async {
            let mut config = hearth::config::ServerConfig::for_dir(&dir, None);
            config.cell_listen = Some("127.0.0.1:0".into());
            config.local_cell = false;
            hearth::server::Server::start(config).await.unwrap()
        };
        let server = start().await;
        let (addr, token) = server.cell_endpoint.clone().expect("the cell endpoint runs");
        let join = format!("https://{addr}");
        let client =
            hearth::cells::remote::join(&join, &token, "cell-x", &dir.join("cell-x")).await.expect("a cell joins");
        // A staging on that cell stores its droplet and the app's build cache through the endpoint.
        let bits = hearth::cells::remote::staging_bits(client, &join);
        let tgz = dir.join("droplet.tgz");
        std::fs::write(&tgz, b"not really a tgz, but bytes to keep").unwrap();
        let stored = bits.store_droplet(&tgz).await.unwrap();
        assert_eq!(stored.sha256, hearth::cells::pki::sha256_hex(b"not really a tgz, but bytes to keep"));
        let back = dir.join("back");
        let app = "5f0c2a4e-8a34-4a8e-9d0e-2f6c1b7d9a10";
        assert!(!bits.fetch_cache(app, &back).await.unwrap(), "no cache yet");
        bits.store_cache(app, &tgz).await.unwrap();
        assert!(bits.fetch_cache(app, &back).await.unwrap());
        let bad = bits.store_cache("not-a-guid", &tgz).await.unwrap_err();
        assert!(format!("{bad:#}").contains("400"), "a bad key is refused: {bad:#}");
        assert_eq!(std::fs::read(&back).unwrap(), b"not really a tgz, but bytes to keep");
        let missing = bits.unpack(hearth_cell::staging_task::Bits::Package, "no-such-key", &dir.join("app")).await;
        assert!(format!("{:#}", missing.unwrap_err()).contains("404"), "an unknown package is not found");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("cells/ca-key.pem")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "the CA key is the owner's alone");
        server.stop().await.unwrap();
        let again = start().await;
        assert_eq!(again.cell_endpoint.as_ref().map(|(_, t)| t.as_str()), Some(token.as_str()), "the same token");
        again.stop().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
