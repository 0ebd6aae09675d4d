//! Convergence, the auction and the boulder planner composed over simulated cells.

use std::time::Duration;

use super::*;
use crate::cell::sample as cell;
use crate::model::sample as lrp;

fn t0() -> Time {
    time::macros::datetime!(2026-01-01 00:00 UTC)
}

fn running_on(world: &World, cell_id: &str) -> usize {
    world.actual().iter().filter(|a| a.state == ActualState::Running && a.cell_id() == Some(cell_id)).count()
}

fn running(world: &World) -> usize {
    world.actual().iter().filter(|a| a.state == ActualState::Running && a.key.presence == Presence::Ordinary).count()
}

fn world(cells: usize, memory_mb: u64, desired: Vec<DesiredLrp>) -> World {
    let zones = ["z1", "z2", "z3"];
    World::new((0..cells).map(|i| cell(&format!("c{i}"), zones[i % 3], memory_mb, t0())).collect(), desired)
}

#[test]
fn desired_instances_are_placed_and_a_lost_cell_is_replaced_within_one_round() {
    let config = Config::default();
    let mut w = world(4, 8192, vec![lrp("web", 6, 512), lrp("worker", 4, 1024)]);
    let first = w.converge(t0(), &config);
    assert_eq!((first.placed, first.failed.len()), (10, 0));
    assert_eq!(running(&w), 10);
    assert!(w.converge(t0(), &config).actions == 0, "converged: nothing left to do");
    let on_c1 = running_on(&w, "c1");
    assert!(on_c1 > 0);
    let later = t0() + Duration::from_secs(16);
    w.heartbeat(later, &["c1"]);
    let round = w.converge(later, &config);
    assert_eq!(round.placed, on_c1, "exactly the lost cell's instances move");
    assert_eq!((running(&w), running_on(&w, "c1")), (10, 0));
}

#[test]
fn a_draining_cell_hands_over_without_losing_an_instance() {
    let config = Config::default();
    let mut w = world(3, 8192, vec![lrp("web", 3, 512)]);
    w.converge(t0(), &config);
    let on_c0 = running_on(&w, "c0");
    w.cells[0].state = CellState::Draining;
    w.converge(t0(), &config);
    assert_eq!(running(&w), 3, "replacements run elsewhere");
    assert_eq!(running_on(&w, "c0"), on_c0, "the evacuating copies still run until the next round");
    w.converge(t0(), &config);
    assert_eq!((running(&w), running_on(&w, "c0")), (3, 0));
}

#[test]
fn scaling_up_and_down_converges() {
    let config = Config::default();
    let mut w = world(3, 8192, vec![lrp("web", 3, 256)]);
    w.converge(t0(), &config);
    w.desired[0].instances = 5;
    w.converge(t0(), &config);
    assert_eq!(running(&w), 5);
    w.desired[0].instances = 1;
    w.converge(t0(), &config);
    let left: Vec<u32> = w.actual().iter().map(|a| a.key.index).collect();
    assert_eq!(left, vec![0]);
}

#[test]
fn a_crash_loop_backs_off_as_diego_does() {
    let config = Config::default();
    let mut w = world(2, 8192, vec![lrp("web", 1, 256)]);
    let mut now = t0();
    w.converge(now, &config);
    let key = ActualLrpKey::ordinary("web", 0);
    for n in 1..=3 {
        now += Duration::from_secs(1);
        assert_eq!(w.crash(&key, now).placed, 1, "crash {n} restarts at once");
        assert_eq!(w.get(&key).unwrap().state, ActualState::Running);
    }
    now += Duration::from_secs(60);
    assert_eq!(w.crash(&key, now).placed, 0);
    let step = |w: &mut World, at: Time| {
        w.heartbeat(at, &[]);
        w.converge(at, &config);
        w.get(&key).unwrap().state
    };
    assert_eq!(step(&mut w, now + Duration::from_secs(29)), ActualState::Crashed, "the 4th crash waits 30 s");
    assert_eq!(step(&mut w, now + Duration::from_secs(30)), ActualState::Running);
    assert_eq!(w.get(&key).unwrap().crash_count, 4);
}

#[test]
fn a_boulder_is_placed_after_smaller_instances_move_and_none_stops_first() {
    let config = Config::default();
    let small: Vec<DesiredLrp> = (0..6).map(|i| lrp(&format!("s{i}"), 1, 512)).collect();
    let mut w = world(3, 2048, small);
    w.converge(t0(), &config);
    assert_eq!(running(&w), 6);
    w.desired.push(lrp("boulder", 1, 1536));
    w.desired_index.insert("boulder".into(), w.desired.len() - 1);
    let round = w.converge(t0(), &config);
    assert_eq!((round.failed.len(), round.moved), (0, 1), "{round:?}");
    assert_eq!(running(&w), 7);
    let too_big = lrp("mountain", 1, 4096);
    w.desired.push(too_big);
    w.desired_index.insert("mountain".into(), w.desired.len() - 1);
    let round = w.converge(t0(), &config);
    assert_eq!(round.failed.len(), 1);
    assert_eq!(round.failed[0].1.to_string(), "insufficient resources: memory");
    let failed = w.get(&ActualLrpKey::ordinary("mountain", 0)).unwrap();
    assert_eq!(failed.placement_error.as_deref(), Some("insufficient resources: memory"));
}
