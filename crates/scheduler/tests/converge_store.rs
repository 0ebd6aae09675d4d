//! Convergence through the store: the loop the scheduler runs — read state, converge,
//! apply the actions, auction, let cells claim and start — on SQLite and PostgreSQL.

use std::time::Duration;

use hearth_scheduler::actual::Instance;
use hearth_scheduler::persist::{FollowUp, SchedulerStore};
use hearth_scheduler::placement::Work;
use hearth_scheduler::{
    ActualLrpKey, ActualState, CellEvent, CellState, Clock, Config, ManualClock, Snapshot, converge,
};

mod common;
use common::{cell, clock, lrp, stores};

/// One round: converge, apply, auction what must start, and let the chosen cells claim and
/// start it at once. Answers how many instances started and how many were refused.
async fn round(sched: &SchedulerStore, clock: &ManualClock, extra: &[ActualLrpKey]) -> (usize, usize) {
    let state = sched.state().await.unwrap();
    let snapshot =
        Snapshot { desired: &state.desired, actual: &state.actual, tasks: &state.tasks, cells: &state.cells };
    let mut to_place: Vec<ActualLrpKey> = extra.to_vec();
    for action in converge(snapshot, clock.now(), &Config::default()) {
        match sched.apply(&action).await.unwrap() {
            FollowUp::PlaceInstance(key) => to_place.push(key),
            FollowUp::StopOnCell { key, .. } => sched.remove_actual(&key).await.unwrap(),
            FollowUp::Nothing | FollowUp::PlaceTask(_) | FollowUp::DeliverCallback(_) => {}
        }
    }
    let result = sched.auction(&to_place, &[]).await.unwrap();
    for (start, cell_id) in &result.placed {
        let Work::Lrp { process_guid, index } = &start.work else { continue };
        let key = ActualLrpKey::ordinary(process_guid, *index);
        let on = Instance { cell_id: cell_id.clone(), instance_guid: format!("{process_guid}-{index}-{cell_id}") };
        sched.claim_actual(&key, on.clone()).await.unwrap();
        sched.start_actual(&key, on, "10.0.0.1", vec![]).await.unwrap();
    }
    (result.placed.len(), result.failed.len())
}

fn on_cell<'a>(actual: &'a [hearth_scheduler::ActualLrp], cell: &str) -> Vec<&'a hearth_scheduler::ActualLrp> {
    actual.iter().filter(|a| a.cell_id() == Some(cell) && a.state == ActualState::Running).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_placed_and_move_off_a_cell_that_stops_heartbeating() {
    for (backend, st) in stores().await {
        let clock = clock();
        let sched = SchedulerStore::new(st, clock.clone());
        let mut c2 = cell("c2");
        c2.zone = "z2".into();
        sched.register_cell(cell("c1")).await.unwrap();
        sched.register_cell(c2).await.unwrap();
        sched.desire_lrp(lrp("web", 4)).await.unwrap();
        let fresh: Vec<ActualLrpKey> = (0..4).map(|i| ActualLrpKey::ordinary("web", i)).collect();
        assert_eq!(round(&sched, &clock, &fresh).await, (4, 0), "{backend}");
        let actual = sched.actual_lrps(Some("web")).await.unwrap();
        assert_eq!((on_cell(&actual, "c1").len(), on_cell(&actual, "c2").len()), (2, 2), "{backend}: spread");
        assert_eq!(round(&sched, &clock, &[]).await, (0, 0), "{backend}: converged");

        clock.advance(Duration::from_secs(16));
        sched.change_cell("c2", CellEvent::Heartbeat).await.unwrap();
        assert_eq!(round(&sched, &clock, &[]).await, (2, 0), "{backend}");
        let cells = sched.cells().await.unwrap();
        assert_eq!(cells[0].state, CellState::Missing, "{backend}");
        let actual = sched.actual_lrps(Some("web")).await.unwrap();
        assert_eq!(on_cell(&actual, "c2").len(), 4, "{backend}: every instance runs on the cell left");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_instance_keeps_its_reason_and_scaling_down_retires_running_extras() {
    for (backend, st) in stores().await {
        let clock = clock();
        let sched = SchedulerStore::new(st, clock.clone());
        sched.register_cell(cell("c1")).await.unwrap();
        let mut huge = lrp("huge", 1);
        huge.memory_mb = 1_000_000;
        sched.desire_lrp(huge).await.unwrap();
        let key = ActualLrpKey::ordinary("huge", 0);
        assert_eq!(round(&sched, &clock, std::slice::from_ref(&key)).await, (0, 1), "{backend}");
        let refused = sched.actual_lrp(&key).await.unwrap().unwrap();
        assert_eq!(refused.placement_error.as_deref(), Some("insufficient resources: memory"), "{backend}");
        assert_eq!(refused.state, ActualState::Unclaimed, "{backend}");

        sched.desire_lrp(lrp("web", 3)).await.unwrap();
        let fresh: Vec<ActualLrpKey> = (0..3).map(|i| ActualLrpKey::ordinary("web", i)).collect();
        assert_eq!(round(&sched, &clock, &fresh).await, (3, 0), "{backend}");
        let web = sched.desired_lrp("web").await.unwrap().unwrap();
        let down = hearth_scheduler::model::DesiredLrpUpdate { instances: Some(1), ..Default::default() };
        sched.update_desired_lrp("web", &down, web.version).await.unwrap();
        assert_eq!(sched.actual_lrps(Some("web")).await.unwrap().len(), 3, "{backend}: running extras wait");
        round(&sched, &clock, &[]).await;
        let left: Vec<u32> = sched.actual_lrps(Some("web")).await.unwrap().iter().map(|a| a.key.index).collect();
        assert_eq!(left, vec![0], "{backend}: convergence retired the running extras");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_left_on_a_missing_cell_are_forgotten_not_sent_to_it() {
    for (backend, st) in stores().await {
        let clock = clock();
        let sched = SchedulerStore::new(st, clock.clone());
        sched.register_cell(cell("c1")).await.unwrap();
        sched.desire_lrp(lrp("web", 2)).await.unwrap();
        let fresh: Vec<ActualLrpKey> = (0..2).map(|i| ActualLrpKey::ordinary("web", i)).collect();
        assert_eq!(round(&sched, &clock, &fresh).await, (2, 0), "{backend}");
        sched.remove_desired_lrp("web").await.unwrap();
        sched.change_cell("c1", CellEvent::MarkMissing).await.unwrap();
        let state = sched.state().await.unwrap();
        let snapshot =
            Snapshot { desired: &state.desired, actual: &state.actual, tasks: &state.tasks, cells: &state.cells };
        let actions = converge(snapshot, clock.now(), &Config::default());
        assert_eq!(actions.len(), 2, "{backend}: {actions:?}");
        for action in &actions {
            assert_eq!(sched.apply(action).await.unwrap(), FollowUp::Nothing, "{backend}: {action:?}");
        }
        assert!(sched.actual_lrps(Some("web")).await.unwrap().is_empty(), "{backend}");
    }
}

/// Instances placed in separate rounds spread over the cells even before the cells claim
/// them: what a cell was handed but has not claimed counts (the converger passes it in).
#[tokio::test(flavor = "multi_thread")]
async fn instances_handed_out_but_not_yet_claimed_count_in_the_next_auction() {
    for (backend, st) in stores().await {
        let sched = SchedulerStore::new(st, clock());
        for id in ["c1", "c2", "c3"] {
            sched.register_cell(cell(id)).await.unwrap();
        }
        sched.desire_lrp(lrp("web", 3)).await.unwrap();
        let mut in_flight: Vec<(String, ActualLrpKey)> = Vec::new();
        for i in 0..3 {
            let key = ActualLrpKey::ordinary("web", i);
            let result = sched.auction_with(std::slice::from_ref(&key), &[], &in_flight).await.unwrap();
            assert_eq!(result.placed.len(), 1, "{backend}");
            in_flight.push((result.placed[0].1.clone(), key));
        }
        let mut cells: Vec<&str> = in_flight.iter().map(|(c, _)| c.as_str()).collect();
        cells.sort_unstable();
        assert_eq!(cells, ["c1", "c2", "c3"], "{backend}: one each, though none was claimed");
    }
}
