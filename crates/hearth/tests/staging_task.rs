//! Staging as a scheduler task (root, real containers): two cells under one scheduler loop,
//! one too small for the build's staging memory. The API's stager creates a staging task,
//! the auction places it on the cell with room, that cell fetches the package and the
//! buildpack from the blobstore, runs the builder (its output as `STG` lines), stores the
//! droplet and the build cache, and the stager answers the droplet. A staging no cell has
//! room for fails at once with CF's `InsufficientResources`; a package that is not in the
//! blobstore fails with a clear reason. Either way no task, container or work file is left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::staging::{BlobStagingBits, CellStager};
use hearth_api::StagingJob;
use hearth_blobstore::{BlobStore, BlobStoreConfig, Namespace};
use hearth_cell::{CellConfig, Converger, Node, NodeConfig, Rep};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{Config, Event, Resources, SystemClock, TaskEvent};
use tokio_util::sync::CancellationToken;

mod common;

// Apps' guids (the build cache is kept under the app's guid).
const APP_1: &str = "00000000-0000-4000-8000-000000000001";
const APP_2: &str = "00000000-0000-4000-8000-000000000002";
const APP_3: &str = "00000000-0000-4000-8000-000000000003";

/// A node of its own: directory, cgroup parent, bridge, subnet, firewall table, ports.
fn node_config(dir: &Path, name: &str, n: u16) -> NodeConfig {
    NodeConfig {
        dir: dir.join(format!("node-{name}")),
        insecure_registries: Vec::new(),
        cgroup_parent: format!("hearth-stage-test-{}-{name}", std::process::id()),
        helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_hearth"))),
        network: hearth_containers::NetworkConfig {
            bridge: format!("hstage{name}0"),
            subnet: format!("10.254.{}.0/24", 160 + n).parse().unwrap(),
            table: format!("hearth_stage_{name}"),
            host_ports: (64000 + n * 100)..=(64099 + n * 100),
        },
    }
}

struct TestCell {
    node: Arc<Node>,
    rep: Rep,
}

async fn cell(
    sched: &SchedulerStore,
    config: &NodeConfig,
    id: &str,
    memory_mb: u64,
    bits: Arc<BlobStagingBits>,
) -> TestCell {
    let node = Arc::new(Node::open(config).await.expect("node opens"));
    let mut cell_config = CellConfig::new(id, Resources { memory_mb, disk_mb: 16384, containers: 32 });
    cell_config.disk_limits = false;
    let rep = Rep::start(cell_config, node.clone(), sched.clone()).await.expect("cell starts");
    rep.stage_with(bits);
    TestCell { node, rep }
}

impl TestCell {
    async fn staging_containers(&self) -> Vec<String> {
        let ids = self.node.runtime().list().await.unwrap();
        ids.iter().map(|id| id.to_string()).filter(|id| id.starts_with("staging-")).collect()
    }

    /// What staging left in the node's work directory.
    fn staging_files(&self) -> Vec<PathBuf> {
        let dir = self.node.dir().join("staging");
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    }
}

fn zip(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    common::uploads::zip_with_modes(entries)
}

async fn put(blobs: &BlobStore, dir: &Path, ns: Namespace, bytes: &[u8]) -> String {
    let path = dir.join(format!("upload-{}.zip", uuid_like()));
    std::fs::write(&path, bytes).unwrap();
    let blob = blobs.put_file(ns, &path).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    blob.key
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

fn job(build: &str, app: &str, package_key: &str, buildpack_key: &str, memory_mb: u64) -> StagingJob {
    StagingJob {
        build_guid: build.into(),
        app_guid: app.into(),
        package_key: package_key.into(),
        buildpacks: vec![("shell_buildpack".into(), buildpack_key.into())],
        detect: true,
        env: vec!["GREETING=hello".into(), "CF_STACK=cflinuxfs4".into()],
        memory_mb,
        disk_mb: 1024,
        stack: "cflinuxfs4".into(),
    }
}

/// The cell each task of the run started on, from the scheduler's events.
fn started_on(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::TaskChanged { before, after } = event
            && before.cell_id.is_none()
            && let Some(cell) = after.cell_id
        {
            seen.push((after.guid, cell));
        }
    }
    seen
}

fn stg_lines(logs: &hearth_logs::Store, app: &str) -> Vec<String> {
    let read = hearth_logs::ReadRequest { limit: Some(1000), ..Default::default() };
    logs.read(app, &read)
        .unwrap()
        .iter()
        .filter(|e| e.tags.get("source_type").map(String::as_str) == Some("STG"))
        .filter_map(|e| match &e.message {
            hearth_logs::Message::Log(log) => Some(String::from_utf8_lossy(&log.payload).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn staging_runs_as_a_task_on_the_cell_the_auction_chooses() {
    let dir = std::env::temp_dir().join(format!("hearth-staging-task-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let url = match common::database_url().await {
            Some(url) => url,
            None => format!("sqlite://{}", dir.join("hearth.db").display()),
        };
        let sched = SchedulerStore::new(hearth_store::Store::open(&url).await.unwrap(), Arc::new(SystemClock));
        let blobs = BlobStore::open(&BlobStoreConfig::Local { root: dir.join("blobs") }).unwrap();
        let limits = hearth_api::Limits::default().stored_archive();
        let bits = Arc::new(BlobStagingBits { blobs: blobs.clone(), limits });
        let logs = hearth_logs::Store::new(hearth_logs::StoreConfig::default()).unwrap();
        let _cgroups =
            common::CgroupParents(["s", "b"].map(|n| format!("hearth-stage-test-{}-{n}", std::process::id())).to_vec());
        let small = cell(&sched, &node_config(&dir, "s", 1), "cell-small", 256, bits.clone()).await;
        let big = cell(&sched, &node_config(&dir, "b", 2), "cell-big", 4096, bits.clone()).await;
        let converger =
            Converger::new(sched.clone(), Config { convergence_interval: Duration::from_secs(1), ..Config::default() });
        for c in [&small, &big] {
            c.rep.send_output_to(logs.clone());
            converger.add_cell(c.rep.clone());
        }
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let (converger, shutdown) = (converger.clone(), shutdown.clone());
            async move { converger.run(shutdown).await }
        });
        let stager = CellStager {
            scheduler: sched.clone(),
            node: small.node.clone(),
            work_dir: dir.join("tmp"),
            timeout: Duration::from_secs(120),
        };

        let package = put(
            &blobs,
            &dir,
            Namespace::Packages,
            &zip(&[("run.sh", 0o755, "echo run\n"), ("Procfile", 0o644, "web: sh run.sh\n")]),
        )
        .await;
        let buildpack = put(
            &blobs,
            &dir,
            Namespace::Buildpacks,
            &zip(&[
                ("bin/detect", 0o755, "#!/bin/sh\n[ -f \"$1/run.sh\" ] && echo shell 1.0\n"),
                ("bin/supply", 0o755, "#!/bin/sh\necho \"staged with $GREETING for $CF_STACK\"\ndate > \"$2/stamp\"\n"),
                ("bin/finalize", 0o755, "#!/bin/sh\necho finalized >&2\n"),
                ("bin/release", 0o755, "#!/bin/sh\nprintf -- '---\\ndefault_process_types:\\n  web: sh run.sh\\n'\n"),
            ]),
        )
        .await;

        // 1 GB of staging memory: only cell-big has room, so the staging lands there.
        let mut events = sched.subscribe();
        let staged = stager.run(job("build-1", APP_1, &package, &buildpack, 1024)).await.expect("staging succeeds");
        assert_eq!(started_on(&mut events), [("build-1".to_string(), "cell-big".to_string())]);
        assert_eq!(staged.buildpack, "shell_buildpack");
        assert_eq!(staged.detect_output.trim(), "shell 1.0");
        assert_eq!(staged.procfile.as_deref(), Some("web: sh run.sh\n"));
        assert!(staged.release_yaml.contains("web: sh run.sh"), "{}", staged.release_yaml);
        assert!(staged.cache_stored, "the build cache was kept");
        assert!(blobs.exists(Namespace::BuildpackCache, APP_1).await.unwrap());
        // The droplet tgz is stored under its key and hash; its layer is on the cell that staged it.
        let tgz = dir.join("droplet.tgz");
        blobs.get_to_file(Namespace::Droplets, &staged.droplet_key, &tgz).await.unwrap();
        let bytes = std::fs::read(&tgz).unwrap();
        assert_eq!(common::registry::sha256(&bytes).trim_start_matches("sha256:"), staged.droplet_sha256);
        let layer = hearth_images::Digest::parse(&staged.layer).unwrap();
        assert!(big.node.images().has_layer(&layer) && !small.node.images().has_layer(&layer));
        let lines = stg_lines(&logs, APP_1);
        for want in ["staged with hello for cflinuxfs4", "finalized", "-----> Finalizing with shell_buildpack"] {
            assert!(lines.iter().any(|l| l == want), "{want:?} in {lines:#?}");
        }
        // The task is the platform's: resolved away once its result was read.
        assert!(sched.tasks().await.unwrap().is_empty());

        // No cell has room for 8 GB: CF's InsufficientResources, at once, not a hang.
        let started = Instant::now();
        let err = stager.run(job("build-2", APP_1, &package, &buildpack, 8192)).await.unwrap_err();
        assert_eq!(err, "InsufficientResources - insufficient resources: memory");
        assert!(started.elapsed() < Duration::from_secs(10), "failed at once: {:?}", started.elapsed());

        // A package the blobstore does not have: a clear reason (the small cell has room now).
        let err = stager.run(job("build-3", APP_2, &"0".repeat(64), &buildpack, 128)).await.unwrap_err();
        assert!(err.starts_with("StagingError - Staging error: cannot fetch the package"), "{err}");
        assert!(sched.tasks().await.unwrap().is_empty(), "no staging task is left");

        // A cancelled staging (the app was deleted) stops its builder and leaves nothing.
        let slow = put(
            &blobs,
            &dir,
            Namespace::Buildpacks,
            &zip(&[("bin/detect", 0o755, "#!/bin/sh\nexit 0\n"), ("bin/compile", 0o755, "#!/bin/sh\nsleep 300\n")]),
        )
        .await;
        let running = tokio::spawn({
            let stager = CellStager { scheduler: sched.clone(), node: big.node.clone(), ..stager };
            let job = job("build-4", APP_3, &package, &slow, 1024);
            async move { stager.run(job).await }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while big.staging_containers().await.is_empty() {
            assert!(Instant::now() < deadline, "the slow staging never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sched.change_task("build-4", &TaskEvent::Cancel).await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap().unwrap_err();
        assert_eq!(err, "StagingError - Staging error: task was cancelled");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = (big.staging_containers().await, big.staging_files(), small.staging_containers().await);
            if left.0.is_empty() && left.1.is_empty() && left.2.is_empty() && small.staging_files().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "staging left {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(sched.tasks().await.unwrap().is_empty(), "no staging task is left");
        shutdown.cancel();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
