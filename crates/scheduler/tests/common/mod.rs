//! Helpers shared by the scheduler's integration tests: a store per back end, a clock
//! that moves only when told, sample LRPs and cells.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hearth_scheduler::actual::Instance;
use hearth_scheduler::{Cell, CellState, DesiredLrp, HealthCheck, ManualClock, Resources, RootFs};
use hearth_store::{self as store, Store};

pub async fn stores() -> Vec<(String, Store)> {
    let dir = std::env::temp_dir().join(format!("hearth-sched-test-{}-{}", std::process::id(), store::new_guid()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let mut out = vec![("sqlite".to_string(), Store::open(&url).await.unwrap())];
    if let Ok(admin) = std::env::var("HEARTH_TEST_DATABASE_URL")
        && !admin.is_empty()
    {
        let name = format!("hearth_sched_{}", &store::new_guid().replace('-', "")[..12]);
        let url = store::create_postgres_database(&admin, &name).await.unwrap();
        out.push(("postgres".to_string(), Store::open(&url).await.unwrap()));
    }
    out
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(time::macros::datetime!(2026-03-01 12:00 UTC)))
}

pub fn lrp(guid: &str, instances: u32) -> DesiredLrp {
    DesiredLrp {
        process_guid: guid.into(),
        app_guid: "app-1".into(),
        instances,
        memory_mb: 256,
        disk_mb: 1024,
        max_pids: 1024,
        rootfs: RootFs::Stack("cflinuxfs4".into()),
        image_credentials: None,
        droplet: Some("droplet-1".into()),
        start_command: "./web".into(),
        env: BTreeMap::from([("PORT".to_string(), "8080".to_string())]),
        ports: vec![8080],
        health_check: HealthCheck::default(),
        routes: vec!["web.example.com".into()],
        log_source_id: "app-1".into(),
        metric_tags: BTreeMap::new(),
        placement_tags: BTreeSet::new(),
        version: 0,
    }
}

pub fn cell(id: &str) -> Cell {
    Cell {
        id: id.into(),
        capacity: Resources { memory_mb: 16384, disk_mb: 65536, containers: 100 },
        zone: "z1".into(),
        stacks: BTreeSet::from(["cflinuxfs4".to_string()]),
        supports_images: true,
        placement_tags: BTreeSet::new(),
        state: CellState::Present,
        last_heartbeat: time::OffsetDateTime::UNIX_EPOCH,
        version: 0,
    }
}

pub fn on(cell: &str, guid: &str) -> Instance {
    Instance { cell_id: cell.into(), instance_guid: guid.into() }
}
