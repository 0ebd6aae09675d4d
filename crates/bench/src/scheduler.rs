//! `hearth-bench scheduler`: the scheduler's decisions at scale, with simulated cells that
//! start instances the instant they are placed (hearth-scheduler's `sim`), so the figures
//! are the cost of deciding, not of running containers: one convergence round that places
//! every desired instance, a steady-state round with nothing to do, and the round that
//! re-places everything after one cell stops heartbeating. Optionally, the same kind of
//! work through the SQLite store (desire, claim, start per instance).
//!
//! Diego's published scale is 250,000 instances on 1,000 cells; its converger runs every
//! 30 s and a silent cell is declared missing within 15 s in Hearth, so a round has to fit
//! well inside those budgets. The run compares against exactly those figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hearth_scheduler::actual::Instance;
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::sim::World;
use hearth_scheduler::{
    ActualLrpKey, ActualState, Cell, CellState, Config, DesiredLrp, HealthCheck, Presence, Resources, RootFs,
    SystemClock,
};
use serde::Serialize;

use crate::progress;
use crate::report::Machine;

/// Diego's published scale: instances on cells.
const DIEGO_INSTANCES: usize = 250_000;
const DIEGO_CELLS: usize = 1_000;
/// Diego's convergence interval and Hearth's missing-cell detection: the budgets a round must fit in.
const CONVERGENCE_BUDGET_SECS: f64 = 30.0;
const MISSING_CELL_BUDGET_SECS: f64 = 15.0;

/// Placement and convergence at scale over simulated cells (and a figure through SQLite).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Skip the 1,000-cell / 250,000-instance scenario
    #[arg(long)]
    skip_large: bool,
    /// Instances desired, claimed and started through the SQLite store (0 skips it)
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    store_instances: usize,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    scenarios: Vec<Scenario>,
    store: Option<StoreFigure>,
    diego: Diego,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Scenario {
    cells: usize,
    instances: usize,
    processes: usize,
    /// The pure auction over every instance (scoring every cell for each).
    auction_secs: f64,
    auction_per_sec: f64,
    /// A full round from nothing: convergence finds every index missing, the auction places
    /// them, the simulated cells claim and start them.
    place_all_secs: f64,
    place_all_per_sec: f64,
    /// A round with nothing to do: the cost of convergence every interval at this size.
    steady_round_secs: f64,
    /// One cell stops heartbeating: the round that marks it missing and re-places its instances.
    lost_cell_instances: usize,
    lost_cell_round_secs: f64,
    running_after: usize,
}

#[derive(Serialize)]
struct StoreFigure {
    instances: usize,
    /// desire (one LRP) + claim + start of every instance, each a committed transaction.
    secs: f64,
    writes_per_sec: f64,
}

#[derive(Serialize)]
struct Diego {
    published_instances: usize,
    published_cells: usize,
    convergence_interval_secs: f64,
    missing_cell_detection_secs: f64,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let mut sizes = vec![(100, 10_000)];
    if !args.skip_large {
        sizes.push((DIEGO_CELLS, DIEGO_INSTANCES));
    }
    let mut scenarios = Vec::new();
    for (cells, instances) in sizes {
        progress(&format!("{cells} cells, {instances} instances"));
        scenarios.push(scenario(cells, instances)?);
    }
    let store = match args.store_instances {
        0 => None,
        n => {
            progress(&format!("{n} instances through the SQLite store"));
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            Some(rt.block_on(store_figure(n))?)
        }
    };
    let report = Report {
        machine,
        scenarios,
        store,
        diego: Diego {
            published_instances: DIEGO_INSTANCES,
            published_cells: DIEGO_CELLS,
            convergence_interval_secs: CONVERGENCE_BUDGET_SECS,
            missing_cell_detection_secs: MISSING_CELL_BUDGET_SECS,
        },
        notes: vec![
            "simulated cells start an instance the instant it is placed: the figures are the scheduler's \
             decisions (convergence, auction, state transitions), one thread, no database, no containers"
                .into(),
            "Diego's 250,000 / 1,000 is a whole cluster running real containers; what compares is whether a \
             round of decisions fits its budgets (the 30 s convergence interval, 15 s missing-cell detection)"
                .into(),
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn processes(instances: usize) -> Vec<DesiredLrp> {
    let sizes = [128, 256, 512, 1024];
    let per_process = 10;
    (0..instances.div_ceil(per_process))
        .map(|p| DesiredLrp {
            process_guid: format!("process-{p:06}"),
            app_guid: format!("app-{p:06}"),
            instances: per_process.min(instances - p * per_process) as u32,
            memory_mb: sizes[p % sizes.len()],
            disk_mb: 1024,
            max_pids: 1024,
            rootfs: RootFs::Stack("cflinuxfs4".into()),
            image_credentials: None,
            droplet: Some(format!("droplet-{p}")),
            start_command: "./web".into(),
            env: BTreeMap::new(),
            ports: vec![8080],
            health_check: HealthCheck::default(),
            routes: vec![],
            log_source_id: format!("app-{p:06}"),
            metric_tags: BTreeMap::new(),
            placement_tags: BTreeSet::new(),
            version: 0,
        })
        .collect()
}

/// Cells sized so the desired instances fill about 70 % of them.
fn cells(n: usize, desired: &[DesiredLrp], now: hearth_scheduler::Time) -> Vec<Cell> {
    let memory: u64 = desired.iter().map(|d| d.memory_mb * u64::from(d.instances)).sum();
    let disk: u64 = desired.iter().map(|d| d.disk_mb * u64::from(d.instances)).sum();
    let count: u64 = desired.iter().map(|d| u64::from(d.instances)).sum();
    let share = |total: u64| (total as f64 / n as f64 / 0.7).ceil() as u64;
    (0..n)
        .map(|i| Cell {
            id: format!("cell-{i:04}"),
            capacity: Resources {
                memory_mb: share(memory),
                disk_mb: share(disk),
                containers: share(count) as u32 + 10,
            },
            zone: format!("z{}", i % 3),
            stacks: BTreeSet::from(["cflinuxfs4".to_string()]),
            supports_images: true,
            placement_tags: BTreeSet::new(),
            state: CellState::Present,
            last_heartbeat: now,
            version: 0,
        })
        .collect()
}

fn running(world: &World) -> usize {
    world.actual().iter().filter(|a| a.state == ActualState::Running && a.key.presence == Presence::Ordinary).count()
}

fn scenario(n_cells: usize, instances: usize) -> anyhow::Result<Scenario> {
    let config = Config::default();
    let t0 = time::OffsetDateTime::now_utc();
    let desired = processes(instances);
    let cells = cells(n_cells, &desired, t0);

    let batch: Vec<_> =
        desired.iter().flat_map(|d| (0..d.instances).map(move |i| hearth_scheduler::Start::lrp(d, i))).collect();
    let started = Instant::now();
    let result = hearth_scheduler::Auction::new(&cells).run(batch);
    let auction = started.elapsed();
    ensure!(result.failed.is_empty(), "the auction refused {} instances: {:?}", result.failed.len(), result.failed[0]);

    let mut world = World::new(cells, desired.clone());
    let started = Instant::now();
    let first = world.converge(t0, &config);
    let place_all = started.elapsed();
    ensure!(first.placed == instances && first.failed.is_empty(), "placed {} of {instances}", first.placed);

    let started = Instant::now();
    let steady = world.converge(t0, &config);
    let steady_round = started.elapsed();
    ensure!(steady.actions == 0, "a converged world still had {} actions", steady.actions);

    let lost = world.cells[0].id.clone();
    let on_lost = world.actual().iter().filter(|a| a.cell_id() == Some(lost.as_str())).count();
    let later = t0 + Duration::from_secs(16);
    world.heartbeat(later, &[lost.as_str()]);
    let started = Instant::now();
    let round = world.converge(later, &config);
    let lost_round = started.elapsed();
    let running_after = running(&world);
    ensure!(round.placed == on_lost, "re-placed {} of the lost cell's {on_lost}", round.placed);
    ensure!(running_after == instances, "{running_after} of {instances} running after the loss");
    ensure!(
        !world.actual().iter().any(|a| a.cell_id() == Some(lost.as_str())),
        "an instance is still on the lost cell"
    );
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    Ok(Scenario {
        cells: n_cells,
        instances,
        processes: desired.len(),
        auction_secs: auction.as_secs_f64(),
        auction_per_sec: rate(instances, auction),
        place_all_secs: place_all.as_secs_f64(),
        place_all_per_sec: rate(instances, place_all),
        steady_round_secs: steady_round.as_secs_f64(),
        lost_cell_instances: on_lost,
        lost_cell_round_secs: lost_round.as_secs_f64(),
        running_after,
    })
}

async fn store_figure(instances: usize) -> anyhow::Result<StoreFigure> {
    let dir = std::env::temp_dir().join(format!("hearth-bench-scheduler-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        let store = hearth_store::Store::open(&format!("sqlite://{}", dir.join("bench.db").display())).await?;
        let sched = SchedulerStore::new(store.clone(), Arc::new(SystemClock));
        let mut lrp = processes(instances).remove(0);
        lrp.instances = u32::try_from(instances).context("too many instances")?;
        let started = Instant::now();
        sched.desire_lrp(lrp).await?;
        for index in 0..instances as u32 {
            let key = ActualLrpKey::ordinary("process-000000", index);
            let on = Instance { cell_id: format!("cell-{}", index % 100), instance_guid: format!("i-{index}") };
            sched.claim_actual(&key, on.clone()).await?;
            sched.start_actual(&key, on, "10.0.0.1", vec![]).await?;
        }
        let secs = started.elapsed().as_secs_f64();
        store.close().await;
        anyhow::Ok(StoreFigure { instances, secs, writes_per_sec: (1 + 2 * instances) as f64 / secs })
    }
    .await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

fn table(r: &Report) -> String {
    let mut out = format!(
        "hearth-bench scheduler on {} CPU(s){} (one thread used), simulated cells\n\n",
        r.machine.cpus,
        r.machine.cpu_model.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
    );
    out.push_str(&format!(
        "{:>6} {:>9} | {:>22} | {:>22} | {:>12} | {:>24}\n",
        "cells", "instances", "auction only", "place all (round)", "steady round", "one cell lost (round)"
    ));
    for s in &r.scenarios {
        out.push_str(&format!(
            "{:>6} {:>9} | {:>8.3} s {:>9.0}/s | {:>8.3} s {:>9.0}/s | {:>10.3} s | {:>5} moved in {:>7.3} s\n",
            s.cells,
            s.instances,
            s.auction_secs,
            s.auction_per_sec,
            s.place_all_secs,
            s.place_all_per_sec,
            s.steady_round_secs,
            s.lost_cell_instances,
            s.lost_cell_round_secs,
        ));
    }
    if let Some(st) = &r.store {
        out.push_str(&format!(
            "\nSQLite store: {} instances desired, claimed and started in {:.2} s ({:.0} committed writes/s)\n",
            st.instances, st.secs, st.writes_per_sec
        ));
    }
    let d = &r.diego;
    out.push_str(&format!(
        "\nDiego's published scale: {} instances on {} cells; budgets: convergence every {} s, missing cell within {} s\n",
        d.published_instances, d.published_cells, d.convergence_interval_secs, d.missing_cell_detection_secs
    ));
    if let Some(big) = r.scenarios.iter().find(|s| s.instances == DIEGO_INSTANCES) {
        out.push_str(&format!(
            "at that scale a steady round takes {:.1} % of the 30 s interval; re-placing a lost cell {:.1} % of the 15 s\n",
            100.0 * big.steady_round_secs / d.convergence_interval_secs,
            100.0 * big.lost_cell_round_secs / d.missing_cell_detection_secs,
        ));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
