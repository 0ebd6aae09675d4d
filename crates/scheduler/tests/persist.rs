//! The scheduler's store against real databases: SQLite always, PostgreSQL too when
//! `HEARTH_TEST_DATABASE_URL` names a server. Every write publishes its event.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hearth_scheduler::events::Event;
use hearth_scheduler::model::DesiredLrpUpdate;
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::task::{TaskDefinition, TaskEvent, TaskState};
use hearth_scheduler::{ActualLrpKey, ActualState, CellEvent, CellState, Clock, Error, Presence, RootFs};
use tokio::sync::broadcast::Receiver;

mod common;
use common::{cell, clock, lrp, on, stores};

fn drain(rx: &mut Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn desiring_scaling_and_removing_an_lrp_keeps_instances_in_step_and_publishes_each_change() {
    for (backend, st) in stores().await {
        let sched = SchedulerStore::new(st, clock());
        let mut rx = sched.subscribe();
        sched.desire_lrp(lrp("web", 3)).await.unwrap();
        let events = drain(&mut rx);
        assert!(matches!(&events[0], Event::DesiredCreated(d) if d.process_guid == "web"), "{backend}");
        assert_eq!(events.iter().filter(|e| matches!(e, Event::ActualCreated(_))).count(), 3, "{backend}");
        let again = sched.desire_lrp(lrp("web", 1)).await.unwrap_err();
        assert!(matches!(again, Error::AlreadyExists { .. }), "{backend}: {again}");
        let mut bad = lrp("bad", 1);
        bad.memory_mb = 0;
        assert!(matches!(sched.desire_lrp(bad).await, Err(Error::Invalid { .. })), "{backend}");
        assert!(sched.desired_lrp("bad").await.unwrap().is_none(), "{backend}: a refused LRP leaves nothing");

        // Index 2 runs on a cell; scaling to 1 removes idle index 1 and leaves 2 for convergence.
        let key2 = ActualLrpKey::ordinary("web", 2);
        sched.claim_actual(&key2, on("c1", "i2")).await.unwrap();
        drain(&mut rx);
        let scale = DesiredLrpUpdate { instances: Some(1), ..Default::default() };
        let down = sched.update_desired_lrp("web", &scale, 0).await.unwrap();
        assert_eq!((down.instances, down.version), (1, 1), "{backend}");
        let left: Vec<u32> = sched.actual_lrps(Some("web")).await.unwrap().iter().map(|a| a.key.index).collect();
        assert_eq!(left, vec![0, 2], "{backend}");
        let events = drain(&mut rx);
        assert!(
            matches!(&events[0], Event::DesiredChanged { before, after } if before.instances == 3 && after.instances == 1)
        );
        assert!(matches!(&events[1], Event::ActualRemoved(a) if a.key.index == 1), "{backend}: {events:?}");

        let stale = sched.update_desired_lrp("web", &scale, 0).await.unwrap_err();
        assert!(matches!(stale, Error::Stale { expected: 0, .. }), "{backend}: {stale}");
        let up = DesiredLrpUpdate { instances: Some(4), ..Default::default() };
        sched.update_desired_lrp("web", &up, 1).await.unwrap();
        let indices: Vec<u32> = sched.actual_lrps(Some("web")).await.unwrap().iter().map(|a| a.key.index).collect();
        assert_eq!(indices, vec![0, 1, 2, 3], "{backend}");

        drain(&mut rx);
        sched.remove_desired_lrp("web").await.unwrap();
        let left = sched.actual_lrps(Some("web")).await.unwrap();
        assert_eq!(left.len(), 1, "{backend}: only the claimed instance waits for its cell to stop it");
        assert_eq!(left[0].state, ActualState::Claimed);
        let removed = drain(&mut rx).iter().filter(|e| matches!(e, Event::ActualRemoved(_))).count();
        assert_eq!(removed, 3, "{backend}");
        assert!(matches!(sched.remove_desired_lrp("web").await, Err(Error::NotFound { .. })), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_schedulers_racing_to_claim_one_instance_leave_exactly_one_winner() {
    for (backend, st) in stores().await {
        let first = SchedulerStore::new(st.clone(), clock());
        first.desire_lrp(lrp("web", 1)).await.unwrap();
        let key = ActualLrpKey::ordinary("web", 0);
        let mut racers = Vec::new();
        for i in 0..8 {
            // Separate SchedulerStores over one database: on PostgreSQL each writes through its own
            // connection, as separate processes would; on SQLite one server process owns the file.
            let sched = SchedulerStore::new(st.clone(), clock());
            let key = key.clone();
            racers.push(tokio::spawn(async move { sched.claim_actual(&key, on(&format!("c{i}"), "g")).await }));
        }
        let mut wins = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(_) => wins += 1,
                Err(Error::Stale { .. } | Error::InstanceMismatch { .. }) => {}
                Err(other) => panic!("{backend}: unexpected {other}"),
            }
        }
        assert_eq!(wins, 1, "{backend}");
        let held = first.actual_lrp(&key).await.unwrap().unwrap();
        assert_eq!((held.state, held.version), (ActualState::Claimed, 1), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_runs_crashes_backs_off_and_evacuates_with_events_before_and_after() {
    for (backend, st) in stores().await {
        let clock = clock();
        let sched = SchedulerStore::new(st, clock.clone());
        sched.desire_lrp(lrp("web", 1)).await.unwrap();
        let key = ActualLrpKey::ordinary("web", 0);
        let mut rx = sched.subscribe();
        sched.claim_actual(&key, on("c1", "i1")).await.unwrap();
        let running = sched.start_actual(&key, on("c1", "i1"), "10.0.0.5", vec![]).await.unwrap().unwrap();
        assert_eq!(running.state, ActualState::Running, "{backend}");
        let events = drain(&mut rx);
        assert!(
            matches!(&events[1], Event::ActualChanged { before, after }
            if before.state == ActualState::Claimed && after.state == ActualState::Running),
            "{backend}"
        );
        let wrong = sched.crash_actual(&key, on("c2", "other"), "boom").await.unwrap_err();
        assert!(matches!(wrong, Error::InstanceMismatch { .. }), "{backend}: {wrong}");
        // Three quick crashes come back UNCLAIMED at once; the fourth stays CRASHED.
        let mut last = None;
        for n in 1..=4 {
            let g = format!("i{n}");
            sched.start_actual(&key, on("c1", &g), "10.0.0.5", vec![]).await.unwrap();
            clock.advance(Duration::from_secs(1));
            last = sched.crash_actual(&key, on("c1", &g), "exit status 2").await.unwrap();
        }
        let crashed = last.unwrap();
        assert_eq!((crashed.state, crashed.crash_count), (ActualState::Crashed, 4), "{backend}");
        assert_eq!(sched.actual_lrp(&key).await.unwrap().unwrap().crash_reason.as_deref(), Some("exit status 2"));

        // Evacuation: the running copy moves aside, a fresh UNCLAIMED instance takes its place.
        sched.start_actual(&key, on("c1", "i9"), "10.0.0.5", vec![]).await.unwrap();
        let evac = sched.change_actual(&key, &hearth_scheduler::ActualLrpEvent::Evacuate).await.unwrap().unwrap();
        assert_eq!(evac.key.presence, Presence::Evacuating, "{backend}");
        let all = sched.actual_lrps(Some("web")).await.unwrap();
        let states: Vec<(Presence, ActualState)> = all.iter().map(|a| (a.key.presence, a.state)).collect();
        assert_eq!(
            states,
            vec![(Presence::Ordinary, ActualState::Unclaimed), (Presence::Evacuating, ActualState::Running)]
        );
        sched.remove_actual(&evac.key).await.unwrap();
        assert_eq!(sched.actual_lrps(Some("web")).await.unwrap().len(), 1, "{backend}");
        assert!(matches!(sched.remove_actual(&evac.key).await, Err(Error::NotFound { .. })), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cells_register_heartbeat_drain_and_go_missing() {
    for (backend, st) in stores().await {
        let clock = clock();
        let sched = SchedulerStore::new(st, clock.clone());
        let mut rx = sched.subscribe();
        let c = sched.register_cell(cell("c1")).await.unwrap();
        assert_eq!((c.state, c.last_heartbeat), (CellState::Present, clock.now()), "{backend}");
        clock.advance(Duration::from_secs(5));
        let beat = sched.change_cell("c1", CellEvent::Heartbeat).await.unwrap();
        assert_eq!(beat.last_heartbeat, clock.now(), "{backend}");
        sched.change_cell("c1", CellEvent::MarkMissing).await.unwrap();
        let err = sched.change_cell("c1", CellEvent::Drain).await.unwrap_err();
        assert!(matches!(err, Error::CellTransition { .. }), "{backend}: {err}");
        assert_eq!(
            sched.cells().await.unwrap()[0].state,
            CellState::Missing,
            "{backend}: refused drain changed nothing"
        );
        let mut bigger = cell("c1");
        bigger.capacity.memory_mb = 32768;
        let again = sched.register_cell(bigger).await.unwrap();
        assert_eq!((again.state, again.capacity.memory_mb), (CellState::Present, 32768), "{backend}");
        sched.change_cell("c1", CellEvent::Drain).await.unwrap();
        let restarted = sched.register_cell(cell("c1")).await.unwrap();
        assert_eq!(restarted.state, CellState::Draining, "{backend}: a draining cell that re-registers keeps draining");
        let mut bad = cell("c2");
        bad.capacity.containers = 0;
        assert!(sched.register_cell(bad).await.is_err(), "{backend}");
        assert!(sched.remove_cell("c1").await.unwrap(), "{backend}");
        assert!(!sched.remove_cell("c1").await.unwrap(), "{backend}: removing twice is harmless");
        let kinds: Vec<&str> = drain(&mut rx)
            .iter()
            .map(|e| match e {
                Event::CellRegistered(_) => "registered",
                Event::CellChanged { .. } => "changed",
                Event::CellRemoved(_) => "removed",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec!["registered", "changed", "changed", "changed", "changed", "changed", "removed"],
            "{backend}"
        );
    }
}

/// A drain while heartbeats write the same cell (each through its own connection on
/// PostgreSQL, as the cell's rep and an operator would) is never refused as stale.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_beside_heartbeats_goes_through() {
    for (backend, st) in stores().await {
        let sched = SchedulerStore::new(st.clone(), clock());
        sched.register_cell(cell("c1")).await.unwrap();
        let mut writers = Vec::new();
        for i in 0..12 {
            let sched = SchedulerStore::new(st.clone(), clock());
            let event = if i == 6 { CellEvent::Drain } else { CellEvent::Heartbeat };
            writers.push(tokio::spawn(async move { sched.change_cell("c1", event).await }));
        }
        for w in writers {
            w.await.unwrap().unwrap_or_else(|e| panic!("{backend}: {e}"));
        }
        let c = sched.cells().await.unwrap().remove(0);
        assert_eq!((c.state, c.version), (CellState::Draining, 12), "{backend}: every change counted once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_complete_resolve_and_cancel() {
    for (backend, st) in stores().await {
        let sched = SchedulerStore::new(st, clock());
        let def = TaskDefinition {
            app_guid: "app-1".into(),
            memory_mb: 128,
            disk_mb: 256,
            max_pids: 64,
            rootfs: RootFs::Image("docker.io/library/busybox".into()),
            droplet: None,
            command: "echo hi".into(),
            env: BTreeMap::new(),
            log_source_id: "app-1".into(),
            log_source: "APP/TASK/t1".into(),
            metric_tags: BTreeMap::new(),
            placement_tags: BTreeSet::new(),
            completion_callback_url: Some("http://127.0.0.1:9/done".into()),
            kind: hearth_scheduler::TaskKind::Command,
        };
        sched.create_task("t1", def.clone()).await.unwrap();
        assert!(matches!(sched.create_task("t1", def.clone()).await, Err(Error::AlreadyExists { .. })), "{backend}");
        let mut rx = sched.subscribe();
        sched.change_task("t1", &TaskEvent::Start { cell_id: "c1".into() }).await.unwrap();
        let done = TaskEvent::Complete {
            cell_id: "c1".into(),
            failed: false,
            failure_reason: None,
            result: Some("hi".into()),
        };
        let completed = sched.change_task("t1", &done).await.unwrap().unwrap();
        assert_eq!((completed.state, completed.result.as_deref()), (TaskState::Completed, Some("hi")), "{backend}");
        sched.change_task("t1", &TaskEvent::Resolving).await.unwrap();
        assert_eq!(sched.change_task("t1", &TaskEvent::Resolve).await.unwrap(), None, "{backend}");
        assert!(sched.task("t1").await.unwrap().is_none(), "{backend}");
        assert_eq!(drain(&mut rx).len(), 4, "{backend}");

        sched.create_task("t2", def).await.unwrap();
        let cancelled = sched.change_task("t2", &TaskEvent::Cancel).await.unwrap().unwrap();
        assert_eq!((cancelled.failed, cancelled.failure_reason.as_deref()), (true, Some("task was cancelled")));
        let err = sched.change_task("t2", &TaskEvent::Cancel).await.unwrap_err();
        assert!(matches!(err, Error::TaskTransition { .. }), "{backend}: {err}");
        assert_eq!(sched.tasks().await.unwrap()[0].version, 1, "{backend}: the refused cancel wrote nothing");
    }
}
