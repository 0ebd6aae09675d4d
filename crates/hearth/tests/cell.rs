//! The scheduler and a cell running real instances (root, real containers on the host
//! stack, real networking): instances start and answer, a killed one is replaced, scaling
//! up and down, a crash loop backs off, a restarted cell keeps its instances, removing the
//! desired LRP leaves nothing.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_cell::{CellConfig, Converger, Node, NodeConfig, Rep};
use hearth_scheduler::model::DesiredLrpUpdate;
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{ActualLrp, ActualState, Config, DesiredLrp, HealthCheckType, Resources, SystemClock};
use tokio_util::sync::CancellationToken;

mod common;

use common::lrps::{WEB, desired, watch_answers};

/// A cell and the scheduler's loop, running until `stop`.
struct Platform {
    sched: SchedulerStore,
    node: Arc<Node>,
    rep: Rep,
    shutdown: CancellationToken,
}

async fn start(sched: &SchedulerStore, node_config: &NodeConfig) -> Platform {
    // Nothing waits to be offered again as stale: what runs was offered when it was created
    // or, created while no loop ran, by the loop's first round.
    let config = Config {
        convergence_interval: Duration::from_secs(1),
        stale_unclaimed_after: Duration::from_secs(3600),
        ..Config::default()
    };
    let converger = Converger::new(sched.clone(), config);
    let p = start_cell(sched, node_config, "cell-1").await;
    converger.add_cell(p.rep.clone());
    tokio::spawn({
        let (converger, shutdown) = (converger.clone(), p.shutdown.clone());
        async move { converger.run(shutdown).await }
    });
    p
}

/// A cell heartbeating until its `shutdown` fires (no scheduler loop).
async fn start_cell(sched: &SchedulerStore, node_config: &NodeConfig, id: &str) -> Platform {
    start_cell_with(sched, node_config, id, 4096).await
}

/// `start_cell` with `memory_mb` of memory.
async fn start_cell_with(sched: &SchedulerStore, node_config: &NodeConfig, id: &str, memory_mb: u64) -> Platform {
    let node = Arc::new(Node::open(node_config).await.expect("node opens"));
    let mut config = CellConfig::new(id, Resources { memory_mb, disk_mb: 16384, containers: 32 });
    config.heartbeat_interval = Duration::from_millis(300);
    config.startup_check_interval = Duration::from_millis(100);
    config.liveness_interval = Duration::from_secs(1);
    config.stop_grace = Duration::from_secs(2);
    config.disk_limits = false;
    let rep = Rep::start(config, node.clone(), sched.clone()).await.expect("cell starts");
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let (rep, shutdown) = (rep.clone(), shutdown.clone());
        async move { rep.heartbeat(shutdown).await }
    });
    Platform { sched: sched.clone(), node, rep, shutdown }
}

/// Cells of `memory_mb` each and one scheduler loop over them (stopped by the token).
async fn cells_with_loop(
    sched: &SchedulerStore,
    config: Config,
    nodes: &[NodeConfig],
    ids: &[&str],
    memory_mb: u64,
) -> (Vec<Platform>, CancellationToken) {
    let converger = Converger::new(sched.clone(), config);
    let mut cells = Vec::new();
    for (node, id) in nodes.iter().zip(ids) {
        let p = start_cell_with(sched, node, id, memory_mb).await;
        converger.add_cell(p.rep.clone());
        cells.push(p);
    }
    let stop_loop = CancellationToken::new();
    tokio::spawn({
        let (converger, stop) = (converger.clone(), stop_loop.clone());
        async move { converger.run(stop).await }
    });
    (cells, stop_loop)
}

/// How many of `a` run on `cell`.
fn on(a: &[ActualLrp], cell: &str) -> usize {
    a.iter().filter(|i| i.instance.as_ref().is_some_and(|x| x.cell_id == cell)).count()
}

impl Platform {
    async fn actual(&self, guid: &str) -> Vec<ActualLrp> {
        let mut all = self.sched.actual_lrps(Some(guid)).await.unwrap();
        all.sort_by_key(|a| a.key.index);
        all
    }

    /// Waits until `done` holds for the instances of `guid` (30 s at most).
    async fn until<F: Fn(&[ActualLrp]) -> bool>(&self, guid: &str, what: &str, done: F) -> Vec<ActualLrp> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let actual = self.actual(guid).await;
            if done(&actual) {
                return actual;
            }
            assert!(Instant::now() < deadline, "{what}: still {actual:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cell_containers(&self) -> usize {
        let ids = self.node.runtime().list().await.unwrap();
        ids.iter().filter(|id| id.as_str().starts_with("lrp-")).count()
    }
}

fn running(n: usize) -> impl Fn(&[ActualLrp]) -> bool {
    move |a: &[ActualLrp]| a.len() == n && a.iter().all(|i| i.state == ActualState::Running)
}

async fn get(address: &str) -> String {
    let url = format!("http://{address}:8080/");
    reqwest::get(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")).text().await.unwrap()
}

/// A node of its own: directory, cgroup parent, bridge, subnet, firewall table, ports.
fn node_config(dir: &std::path::Path, name: &str, n: u16) -> NodeConfig {
    NodeConfig {
        dir: dir.join(format!("node-{name}")),
        insecure_registries: Vec::new(),
        cgroup_parent: format!("hearth-cell-test-{}-{name}", std::process::id()),
        helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_hearth"))),
        network: hearth_containers::NetworkConfig {
            bridge: format!("hcell{name}0"),
            subnet: format!("10.254.{}.0/24", 128 + n).parse().unwrap(),
            table: format!("hearth_cell_{name}"),
            host_ports: (63000 + n * 100)..=(63099 + n * 100),
        },
    }
}

async fn scheduler(dir: &std::path::Path) -> SchedulerStore {
    std::fs::create_dir_all(dir).unwrap();
    let url = match common::database_url().await {
        Some(url) => url,
        None => format!("sqlite://{}", dir.join("hearth.db").display()),
    };
    SchedulerStore::new(hearth_store::Store::open(&url).await.unwrap(), Arc::new(SystemClock))
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn a_cell_runs_replaces_scales_backs_off_and_keeps_instances_across_a_restart() {
    let _cgroups =
        common::CgroupParents(["one"].map(|n| format!("hearth-cell-test-{}-{n}", std::process::id())).to_vec());
    let dir = std::env::temp_dir().join(format!("hearth-cell-test-{}", std::process::id()));
    let node_config = node_config(&dir, "one", 0);
    block_on(async {
        let sched = scheduler(&dir).await;
        let p = start(&sched, &node_config).await;

        // Three instances start, pass their port check and answer.
        sched.desire_lrp(desired("web", 3, WEB, HealthCheckType::Port)).await.unwrap();
        let actual = p.until("web", "3 running", running(3)).await;
        for (i, instance) in actual.iter().enumerate() {
            assert_eq!(instance.instance.as_ref().unwrap().cell_id, "cell-1");
            let address = instance.address.as_deref().unwrap();
            assert_eq!(get(address).await, format!("hello from {i}\n"));
        }

        // A killed instance is reported crashed and replaced at once.
        let victim = actual[1].instance.clone().unwrap();
        let id = hearth_cell::instance::container_id(&victim.instance_guid).unwrap();
        p.node.runtime().kill(&id, 9).await.unwrap();
        let actual = p
            .until("web", "index 1 replaced", |a| {
                running(3)(a) && a[1].instance.as_ref().unwrap().instance_guid != victim.instance_guid
            })
            .await;
        // The kill, once: the replacement is handed out once and does not crash.
        assert_eq!(actual[1].crash_count, 1, "{:?}", actual[1]);
        assert!(actual[1].crash_reason.as_deref().unwrap().contains("137"), "{:?}", actual[1].crash_reason);
        assert_eq!(get(actual[1].address.as_deref().unwrap()).await, "hello from 1\n");

        // Scale 3 → 5 → 1.
        let scale = |n: u32| {
            let sched = sched.clone();
            async move {
                let version = sched.desired_lrp("web").await.unwrap().unwrap().version;
                let update = DesiredLrpUpdate { instances: Some(n), ..DesiredLrpUpdate::default() };
                sched.update_desired_lrp("web", &update, version).await.unwrap();
            }
        };
        scale(5).await;
        p.until("web", "5 running", running(5)).await;
        scale(1).await;
        p.until("web", "1 running", running(1)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.cell_containers().await != 1 {
            assert!(Instant::now() < deadline, "scaled-down containers were not removed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A crash loop: three immediate restarts, then the 30 s backoff.
        sched.desire_lrp(desired("crashy", 1, "echo starting; exit 3", HealthCheckType::Process)).await.unwrap();
        let crashed = p
            .until("crashy", "crashed and backing off", |a| {
                a.len() == 1 && a[0].state == ActualState::Crashed && a[0].crash_count >= 3
            })
            .await;
        assert_eq!(crashed[0].crash_reason.as_deref(), Some("APP/PROC/WEB: Exited with status 3"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let later = p.actual("crashy").await;
        assert_eq!(later[0].crash_count, crashed[0].crash_count, "restarted during its backoff");
        assert_eq!(later[0].state, ActualState::Crashed);
        sched.remove_desired_lrp("crashy").await.unwrap();

        // A restarted cell takes up its running instance again instead of replacing it.
        let before = p.actual("web").await;
        p.shutdown.cancel();
        drop(p);
        // What is desired while no scheduler loop runs starts when one does.
        sched.desire_lrp(desired("late", 1, WEB, HealthCheckType::Port)).await.unwrap();
        let p = start(&sched, &node_config).await;
        let late = p.until("late", "started by the new loop", running(1)).await;
        assert_eq!(get(late[0].address.as_deref().unwrap()).await, "hello from 0\n");
        sched.remove_desired_lrp("late").await.unwrap();
        p.until("late", "late one gone", |a| a.is_empty()).await;
        assert_eq!(p.rep.running().len(), 1, "the instance is watched again: {:?}", p.rep.running());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = p.actual("web").await;
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].instance, before[0].instance, "the same instance runs on");
        assert_eq!(after[0].state, ActualState::Running);
        assert_eq!(get(after[0].address.as_deref().unwrap()).await, "hello from 0\n");

        // Removing the desired LRP stops everything.
        sched.remove_desired_lrp("web").await.unwrap();
        p.until("web", "all gone", |a| a.is_empty()).await;
        // The instance leaves the store first (and so the router), then its container and
        // root filesystem go.
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.cell_containers().await != 0 || !p.node.images().rootfs_ids().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "containers or root filesystems left after removing the desired LRP");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p.shutdown.cancel();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three cells under one scheduler loop: draining one moves its instance away with a copy
/// running at every moment; a cell that stops heartbeating has its instance started
/// elsewhere, and when it comes back it removes the container it no longer owns.
#[test]
fn a_drained_cell_hands_over_without_loss_and_a_silent_cell_is_replaced() {
    let _cgroups =
        common::CgroupParents(["a", "b", "c"].map(|n| format!("hearth-cell-test-{}-{n}", std::process::id())).to_vec());
    let dir = std::env::temp_dir().join(format!("hearth-cells-test-{}", std::process::id()));
    let configs: Vec<NodeConfig> = ["a", "b", "c"].iter().zip(1..).map(|(n, i)| node_config(&dir, n, i)).collect();
    block_on(async {
        let sched = scheduler(&dir).await;
        let config = Config {
            convergence_interval: Duration::from_millis(500),
            cell_missing_after: Duration::from_secs(3),
            ..Config::default()
        };
        let (cells, stop_loop) = cells_with_loop(&sched, config, &configs, &["cell-a", "cell-b", "cell-c"], 4096).await;

        sched.desire_lrp(desired("web", 3, WEB, HealthCheckType::Port)).await.unwrap();
        let actual = cells[0].until("web", "3 running", running(3)).await;
        assert_eq!((on(&actual, "cell-a"), on(&actual, "cell-b"), on(&actual, "cell-c")), (1, 1, 1), "spread");

        // Watch that every index has a running copy while cell-a drains.
        let watching = CancellationToken::new();
        let gaps = tokio::spawn({
            let (sched, watching) = (sched.clone(), watching.clone());
            async move {
                let mut gaps = Vec::new();
                while !watching.is_cancelled() {
                    let all = sched.actual_lrps(Some("web")).await.unwrap();
                    for index in 0..3 {
                        if !all.iter().any(|a| a.key.index == index && a.state == ActualState::Running) {
                            gaps.push(index);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                gaps
            }
        });
        cells[0].rep.drain().await.unwrap();
        cells[0].until("web", "moved off cell-a", |a| running(3)(a) && on(a, "cell-a") == 0).await;
        watching.cancel();
        assert_eq!(gaps.await.unwrap(), Vec::<u32>::new(), "an index had no running copy during the drain");
        let deadline = Instant::now() + Duration::from_secs(20);
        while cells[0].cell_containers().await != 0 {
            if Instant::now() > deadline {
                let left = cells[0].node.runtime().list().await.unwrap();
                let actual = sched.actual_lrps(Some("web")).await.unwrap();
                panic!(
                    "cell-a kept its evacuated container: {left:?}; cell-a watches {:?}; the store: {actual:#?}",
                    cells[0].rep.running()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // cell-b goes silent: declared missing, its instance starts on cell-c.
        cells[1].shutdown.cancel();
        let actual = cells[2].until("web", "all on cell-c", |a| running(3)(a) && on(a, "cell-c") == 3).await;
        assert_eq!(on(&actual, "cell-b"), 0);
        let b = sched.cells().await.unwrap().into_iter().find(|c| c.id == "cell-b").unwrap();
        assert_eq!(b.state, hearth_scheduler::CellState::Missing);

        // When cell-b comes back it removes the container it no longer owns.
        let back = start_cell(&sched, &configs[1], "cell-b").await;
        assert_eq!(back.cell_containers().await, 0);
        assert!(back.rep.running().is_empty());

        sched.remove_desired_lrp("web").await.unwrap();
        cells[2].until("web", "all gone", |a| a.is_empty()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while cells[2].cell_containers().await != 0 {
            if Instant::now() > deadline {
                let left = cells[2].node.runtime().list().await.unwrap();
                panic!("containers left on cell-c: {left:?}; cell-c watches {:?}", cells[2].rep.running());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_loop.cancel();
        back.shutdown.cancel();
        for p in &cells {
            p.shutdown.cancel();
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hearth server` as root runs a cell: instances of an app's process show up in the CF
/// API's `/stats` as they run, with their address and ports, and a crash with its reason.
#[test]
fn process_stats_show_the_instances_the_cell_runs() {
    let _cgroups =
        common::CgroupParents(["stats"].map(|n| format!("hearth-cell-test-{}-{n}", std::process::id())).to_vec());
    let dir = std::env::temp_dir().join(format!("hearth-cell-stats-{}", std::process::id()));
    block_on(async {
        let mut config = hearth::config::ServerConfig::for_dir(&dir.join("data"), common::database_url().await);
        config.node = Some(node_config(&dir, "stats", 9));
        let platform = common::TestPlatform::start_with(config).await;
        let token = platform.admin_token().await;
        let org = platform.create_org(&token, "stats-org").await;
        let space = platform.create_space(&token, &org, "stats-space").await;
        let (status, app) = platform
            .post(
                "/v3/apps",
                &token,
                serde_json::json!({"name": "web", "relationships": {"space": {"data": {"guid": space}}}}),
            )
            .await;
        assert_eq!(status, 201, "{app}");
        let (_, process) =
            platform.get(&format!("/v3/apps/{}/processes/web", app["guid"].as_str().unwrap()), &token).await;
        let guid = process["guid"].as_str().unwrap().to_string();
        let (_, stats) = platform.get(&format!("/v3/processes/{guid}/stats"), &token).await;
        assert_eq!(stats["resources"][0]["state"], "DOWN", "{stats}");

        // What an app's start does: desire the process's LRP.
        let sched = platform.server.as_ref().unwrap().scheduler.clone();
        // (Its LRP's guid is the process guid and a version, as the API makes it.)
        let lrp_guid = format!("{guid}-v1");
        let mut lrp = desired(&lrp_guid, 1, WEB, HealthCheckType::Port);
        lrp.app_guid = app["guid"].as_str().unwrap().into();
        sched.desire_lrp(lrp).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let stats = loop {
            let (_, stats) = platform.get(&format!("/v3/processes/{guid}/stats"), &token).await;
            if stats["resources"][0]["state"] == "RUNNING" {
                break stats;
            }
            assert!(Instant::now() < deadline, "never RUNNING: {stats}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let instance = &stats["resources"][0];
        let ip = instance["instance_internal_ip"].as_str().unwrap();
        assert_eq!(instance["host"], ip);
        assert_eq!(instance["instance_ports"][0]["internal"], 8080);
        assert!(instance["instance_ports"][0]["external"].as_u64().unwrap() > 0);
        assert_eq!(get(ip).await, "hello from 0\n");

        // A crash is the app's audit event, with the exit description.
        let node = platform.server.as_ref().unwrap().node.clone().unwrap();
        let running = sched.actual_lrps(Some(&lrp_guid)).await.unwrap();
        let instance_guid = running[0].instance.as_ref().unwrap().instance_guid.clone();
        let id = hearth_cell::instance::container_id(&instance_guid).unwrap();
        node.runtime().kill(&id, 9).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let event = loop {
            let (_, events) = platform.get("/v3/audit_events?types=audit.app.process.crash", &token).await;
            if let Some(event) = events["resources"].as_array().and_then(|r| r.first()) {
                break event.clone();
            }
            assert!(Instant::now() < deadline, "no crash event: {events}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(event["target"]["guid"], app["guid"]);
        assert_eq!(event["actor"]["type"], "app");
        assert_eq!(event["data"]["instance"], instance_guid.as_str(), "{event}");
        assert_eq!(event["data"]["index"], 0);
        assert_eq!(event["data"]["process_type"], "web");
        assert!(event["data"]["exit_description"].as_str().unwrap().contains("137"), "{event}");

        sched.remove_desired_lrp(&lrp_guid).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.runtime().list().await.unwrap().iter().any(|id| id.as_str().starts_with("lrp-"))
            || !node.images().rootfs_ids().unwrap().is_empty()
        {
            assert!(Instant::now() < deadline, "the instance's container or root filesystem was not removed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        platform.stop().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The 'boulder': an instance bigger than any cell's free memory although the cells have
/// enough together. A smaller instance moves (started on the other cell before its old
/// copy stops, so it keeps answering) and the big one runs where it left.
#[test]
fn a_big_instance_gets_room_by_moving_a_small_one_without_downtime() {
    let _cgroups =
        common::CgroupParents(["p", "q"].map(|n| format!("hearth-cell-test-{}-{n}", std::process::id())).to_vec());
    let dir = std::env::temp_dir().join(format!("hearth-cells-boulder-{}", std::process::id()));
    let configs: Vec<NodeConfig> = ["p", "q"].iter().zip(5..).map(|(n, i)| node_config(&dir, n, i)).collect();
    block_on(async {
        let sched = scheduler(&dir).await;
        let config = Config { convergence_interval: Duration::from_millis(500), ..Config::default() };
        let (cells, stop_loop) = cells_with_loop(&sched, config, &configs, &["cell-p", "cell-q"], 300).await;

        // Two small instances, one per cell: 200 MB free on each, 400 MB in all.
        let small = DesiredLrp { memory_mb: 100, ..desired("small", 2, WEB, HealthCheckType::Port) };
        sched.desire_lrp(small).await.unwrap();
        let actual = cells[0].until("small", "2 running", running(2)).await;
        assert_eq!((on(&actual, "cell-p"), on(&actual, "cell-q")), (1, 1), "spread");

        // Each small index answers throughout.
        let watching = CancellationToken::new();
        let gaps = watch_answers(&sched, "small", 2, watching.clone());
        let big = DesiredLrp { memory_mb: 250, ..desired("big", 1, WEB, HealthCheckType::Port) };
        sched.desire_lrp(big).await.unwrap();
        let big = cells[0].until("big", "the big instance running", running(1)).await;
        let target = big[0].instance.as_ref().unwrap().cell_id.clone();
        let small =
            cells[0].until("small", "both small ones beside it", |a| running(2)(a) && on(a, &target) == 0).await;
        assert_eq!(small.len(), 2);
        watching.cancel();
        assert_eq!(gaps.await.unwrap(), Vec::<u32>::new(), "a small instance stopped answering while it moved");

        for guid in ["small", "big"] {
            sched.remove_desired_lrp(guid).await.unwrap();
            cells[0].until(guid, "all gone", |a| a.is_empty()).await;
        }
        for p in &cells {
            let deadline = Instant::now() + Duration::from_secs(20);
            while p.cell_containers().await != 0 {
                assert!(Instant::now() < deadline, "containers left on {}", p.rep.id());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        stop_loop.cancel();
        for p in &cells {
            p.shutdown.cancel();
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
