//! Convergence at one instant: each kind of difference and the action it yields.

use std::time::Duration;

use super::*;
use crate::actual::{ActualLrpEvent, Instance, Next};
use crate::cell::sample as cell;
use crate::model::sample as lrp;
use crate::task::{TaskEvent, TaskNext, sample_definition};

fn t0() -> Time {
    time::macros::datetime!(2026-01-01 00:00 UTC)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn running(guid: &str, index: u32, cell_id: &str, at: Time) -> ActualLrp {
    let ev = ActualLrpEvent::Start {
        instance: Instance { cell_id: cell_id.into(), instance_guid: format!("{guid}-{index}") },
        address: "10.0.0.1".into(),
        ports: vec![],
        preferred_address: Default::default(),
    };
    match ActualLrp::unclaimed(guid, index, at).apply(&ev, at).unwrap() {
        Next::Becomes(a) => a,
        Next::Removed => unreachable!(),
    }
}

/// The cells as if they had just heartbeated.
fn fresh(cells: &[Cell], now: Time) -> Vec<Cell> {
    cells.iter().map(|c| Cell { last_heartbeat: now, ..c.clone() }).collect()
}

fn run(desired: &[DesiredLrp], actual: &[ActualLrp], tasks: &[Task], cells: &[Cell], now: Time) -> Vec<Action> {
    converge(Snapshot { desired, actual, tasks, cells }, now, &Config::default())
}

#[test]
fn missing_indices_are_created_and_extra_ones_retired() {
    let cells = [cell("c1", "z1", 8192, t0())];
    let desired = [lrp("web", 3, 256)];
    let actual = [running("web", 0, "c1", t0()), running("web", 5, "c1", t0()), running("gone", 0, "c1", t0())];
    let actions = run(&desired, &actual, &[], &cells, t0());
    assert_eq!(
        actions,
        vec![
            Action::CreateInstance { process_guid: "web".into(), index: 1 },
            Action::CreateInstance { process_guid: "web".into(), index: 2 },
            Action::RetireInstance { key: ActualLrpKey::ordinary("gone", 0), cell_id: Some("c1".into()) },
            Action::RetireInstance { key: ActualLrpKey::ordinary("web", 5), cell_id: Some("c1".into()) },
        ]
    );
    assert!(run(&desired[..0], &[], &[], &cells, t0()).is_empty(), "nothing desired, nothing running: no action");
}

#[test]
fn a_silent_cell_goes_missing_after_fifteen_seconds_and_its_instances_move() {
    let cells = [cell("c1", "z1", 8192, t0()), cell("c2", "z1", 8192, t0() + secs(10))];
    let desired = [lrp("web", 2, 256)];
    let actual = [running("web", 0, "c1", t0()), running("web", 1, "c2", t0())];
    assert!(run(&desired, &actual, &[], &cells, t0() + secs(15)).is_empty(), "15 s is not yet missing");
    let actions = run(&desired, &actual, &[], &cells, t0() + secs(16));
    assert_eq!(
        actions,
        vec![
            Action::MarkCellMissing { cell_id: "c1".into() },
            Action::Reschedule { key: ActualLrpKey::ordinary("web", 0), cell_id: "c1".into() },
        ]
    );
}

#[test]
fn crashed_instances_restart_once_their_backoff_is_over() {
    let cells = [cell("c1", "z1", 8192, t0())];
    let desired = [lrp("web", 1, 256)];
    let mut crashed = ActualLrp::unclaimed("web", 0, t0());
    crashed.state = ActualState::Crashed;
    crashed.crash_count = 5; // the second backoff: 60 s
    let (at59, at60) = (t0() + secs(59), t0() + secs(60));
    assert!(run(&desired, std::slice::from_ref(&crashed), &[], &fresh(&cells, at59), at59).is_empty());
    let actions = run(&desired, std::slice::from_ref(&crashed), &[], &fresh(&cells, at60), at60);
    assert_eq!(actions, vec![Action::RestartCrashed { key: ActualLrpKey::ordinary("web", 0) }]);
    crashed.crash_count = 200;
    let day = t0() + secs(86_400);
    assert!(run(&desired, &[crashed], &[], &fresh(&cells, day), day).is_empty(), "given up");
}

#[test]
fn stale_claims_and_unclaimed_instances_are_offered_again() {
    let cells = [cell("c1", "z1", 8192, t0() + secs(300))];
    let desired = [lrp("web", 2, 256)];
    let unclaimed = ActualLrp::unclaimed("web", 0, t0());
    let claim = ActualLrpEvent::Claim(Instance { cell_id: "c1".into(), instance_guid: "i".into() });
    let Next::Becomes(claimed) = ActualLrp::unclaimed("web", 1, t0()).apply(&claim, t0()).unwrap() else {
        unreachable!()
    };
    let actual = [unclaimed, claimed];
    assert!(run(&desired, &actual, &[], &cells, t0() + secs(29)).is_empty());
    let at_181 = run(&desired, &actual, &[], &cells, t0() + secs(181));
    assert_eq!(
        at_181,
        vec![
            Action::PlaceInstance { key: ActualLrpKey::ordinary("web", 0) },
            Action::UnclaimStale { key: ActualLrpKey::ordinary("web", 1), cell_id: "c1".into() },
        ]
    );
}

#[test]
fn a_draining_cell_is_evacuated_and_its_copy_stops_only_once_the_replacement_runs() {
    let mut draining = cell("c1", "z1", 8192, t0());
    draining.state = CellState::Draining;
    let cells = [draining, cell("c2", "z1", 8192, t0())];
    let desired = [lrp("web", 1, 256)];
    let original = running("web", 0, "c1", t0());
    let actions = run(&desired, std::slice::from_ref(&original), &[], &cells, t0());
    assert_eq!(actions, vec![Action::Evacuate { key: ActualLrpKey::ordinary("web", 0), cell_id: "c1".into() }]);
    // The store turns the original into the evacuating copy and creates an UNCLAIMED replacement.
    let Next::Becomes(evac) = original.apply(&ActualLrpEvent::Evacuate, t0()).unwrap() else { unreachable!() };
    let replacement = ActualLrp::unclaimed("web", 0, t0());
    assert!(run(&desired, &[evac.clone(), replacement], &[], &cells, t0() + secs(5)).is_empty(), "still starting");
    let replacement = running("web", 0, "c2", t0() + secs(6));
    let actions = run(&desired, &[evac.clone(), replacement], &[], &cells, t0() + secs(7));
    assert_eq!(actions, vec![Action::StopEvacuated { key: evac.key.clone(), cell_id: "c1".into(), replaced: true }]);
    let stuck = ActualLrp::unclaimed("web", 0, t0());
    let at600 = t0() + secs(600);
    let late = run(&desired, &[evac.clone(), stuck], &[], &fresh(&cells, at600), at600);
    assert_eq!(
        late,
        vec![
            Action::PlaceInstance { key: ActualLrpKey::ordinary("web", 0) },
            Action::StopEvacuated { key: evac.key, cell_id: "c1".into(), replaced: false },
        ]
    );
}

#[test]
fn tasks_are_kicked_failed_resolved_and_expired() {
    let cells = [cell("c1", "z1", 8192, t0()), cell("gone", "z1", 8192, t0())];
    let pending = Task::pending("a-pending", sample_definition(128), t0()).unwrap();
    let TaskNext::Becomes(on_gone) = Task::pending("b-running", sample_definition(128), t0())
        .unwrap()
        .apply(&TaskEvent::Start { cell_id: "gone".into() }, t0())
        .unwrap()
    else {
        unreachable!()
    };
    let mut with_callback = sample_definition(128);
    with_callback.completion_callback_url = Some("http://127.0.0.1:1/cb".into());
    let completed = TaskEvent::Fail { reason: "x".into() };
    let TaskNext::Becomes(done) =
        Task::pending("c-done", with_callback, t0()).unwrap().apply(&completed, t0()).unwrap()
    else {
        unreachable!()
    };
    let tasks = [pending, on_gone, done];
    let at = |s| {
        let mut cells = cells.clone();
        cells[0].last_heartbeat = t0() + secs(s);
        run(&[], &[], &tasks, &cells, t0() + secs(s))
    };
    assert_eq!(
        at(30),
        vec![
            Action::MarkCellMissing { cell_id: "gone".into() },
            Action::PlaceTask { guid: "a-pending".into() },
            Action::FailTask { guid: "b-running".into(), reason: "cell disappeared before completion".into() },
            Action::ResolveTask { guid: "c-done".into() },
        ]
    );
    let late = at(1800);
    assert!(
        late.contains(&Action::FailTask { guid: "a-pending".into(), reason: "not started within time limit".into() })
    );
    assert!(late.contains(&Action::DeleteTask { guid: "c-done".into() }));
}
