//! The actual LRP transition table, event by event.

use std::time::Duration;

use super::*;

fn t0() -> Time {
    time::macros::datetime!(2026-01-01 00:00 UTC)
}

fn on(cell: &str, guid: &str) -> Instance {
    Instance { cell_id: cell.into(), instance_guid: guid.into() }
}

fn becomes(lrp: &ActualLrp, ev: ActualLrpEvent, now: Time) -> ActualLrp {
    match lrp.apply(&ev, now).unwrap() {
        Next::Becomes(next) => next,
        Next::Removed => panic!("{ev:?} removed the instance"),
    }
}

fn start(cell: &str, guid: &str) -> ActualLrpEvent {
    ActualLrpEvent::Start {
        instance: on(cell, guid),
        address: "10.0.0.1".into(),
        ports: vec![],
        preferred_address: Default::default(),
    }
}

fn crash(cell: &str, guid: &str) -> ActualLrpEvent {
    ActualLrpEvent::Crash { instance: on(cell, guid), reason: "exit status 1".into() }
}

#[test]
fn claim_start_crash_follow_the_table_and_bump_the_version() {
    let lrp = ActualLrp::unclaimed("web", 0, t0());
    let claimed = becomes(&lrp, ActualLrpEvent::Claim(on("c1", "i1")), t0());
    assert_eq!((claimed.state, claimed.cell_id(), claimed.version), (ActualState::Claimed, Some("c1"), 1));
    let again = becomes(&claimed, ActualLrpEvent::Claim(on("c1", "i1")), t0());
    assert_eq!(again, claimed, "a repeated claim by the same instance changes nothing");
    let running = becomes(&claimed, start("c1", "i1"), t0() + Duration::from_secs(5));
    assert_eq!(
        (running.state, running.since, running.version),
        (ActualState::Running, t0() + Duration::from_secs(5), 2)
    );
    assert_eq!(running.address.as_deref(), Some("10.0.0.1"));
    let crashed = becomes(&running, crash("c1", "i1"), t0() + Duration::from_secs(10));
    assert_eq!(crashed.state, ActualState::Unclaimed, "the first crash restarts at once");
    assert_eq!((crashed.crash_count, crashed.instance.as_ref()), (1, None));
    assert_eq!(crashed.crash_reason.as_deref(), Some("exit status 1"));
}

#[test]
fn the_fourth_crash_leaves_it_crashed_and_five_minutes_running_resets_the_count() {
    let mut lrp = ActualLrp::unclaimed("web", 0, t0());
    let mut now = t0();
    for n in 1..=4u32 {
        lrp = becomes(&lrp, start("c1", "i1"), now);
        now += Duration::from_secs(1);
        lrp = becomes(&lrp, crash("c1", "i1"), now);
        assert_eq!(lrp.crash_count, n);
    }
    assert_eq!(lrp.state, ActualState::Crashed);
    let restarted = becomes(&lrp, ActualLrpEvent::Unclaim, now);
    let running = becomes(&restarted, start("c2", "i2"), now);
    let later = now + Duration::from_secs(301);
    let crashed = becomes(&running, crash("c2", "i2"), later);
    assert_eq!((crashed.crash_count, crashed.state), (1, ActualState::Unclaimed));
}

#[test]
fn illegal_events_are_typed_errors_naming_state_and_event() {
    let lrp = ActualLrp::unclaimed("web", 3, t0());
    let err = lrp.apply(&crash("c1", "i1"), t0()).unwrap_err();
    assert_eq!(err.to_string(), "actual LRP web/3: cannot crash while UNCLAIMED");
    assert!(lrp.apply(&ActualLrpEvent::Unclaim, t0()).is_err());
    assert!(lrp.apply(&ActualLrpEvent::Evacuate, t0()).is_err());
    let running = becomes(&lrp, start("c1", "i1"), t0());
    assert!(running.apply(&ActualLrpEvent::Claim(on("c2", "i2")), t0()).is_err());
    assert!(running.apply(&ActualLrpEvent::FailPlacement { reason: "x".into() }, t0()).is_err());
}

#[test]
fn another_instance_cannot_claim_start_or_crash_what_one_holds() {
    let claimed = becomes(&ActualLrp::unclaimed("web", 0, t0()), ActualLrpEvent::Claim(on("c1", "i1")), t0());
    for ev in [ActualLrpEvent::Claim(on("c2", "i2")), start("c2", "i2"), crash("c1", "other")] {
        let err = claimed.apply(&ev, t0()).unwrap_err();
        assert!(matches!(err, Error::InstanceMismatch { .. }), "{ev:?}: {err}");
    }
}

#[test]
fn evacuation_keeps_the_running_copy_until_removed() {
    let running = becomes(&ActualLrp::unclaimed("web", 0, t0()), start("c1", "i1"), t0());
    let evac = becomes(&running, ActualLrpEvent::Evacuate, t0());
    assert_eq!(
        (evac.key.presence, evac.state, evac.cell_id()),
        (Presence::Evacuating, ActualState::Running, Some("c1"))
    );
    assert_eq!(evac.key.to_string(), "web/0/evacuating");
    assert!(evac.apply(&ActualLrpEvent::Unclaim, t0()).is_err());
    assert_eq!(evac.apply(&crash("c1", "i1"), t0()).unwrap(), Next::Removed);
    assert_eq!(evac.apply(&ActualLrpEvent::Remove, t0()).unwrap(), Next::Removed);
}

#[test]
fn a_failed_placement_is_recorded_and_a_claim_clears_it() {
    let lrp = ActualLrp::unclaimed("web", 0, t0());
    let failed = becomes(&lrp, ActualLrpEvent::FailPlacement { reason: "insufficient resources: memory".into() }, t0());
    assert_eq!(failed.placement_error.as_deref(), Some("insufficient resources: memory"));
    assert_eq!(failed.state, ActualState::Unclaimed);
    let claimed = becomes(&failed, ActualLrpEvent::Claim(on("c1", "i1")), t0());
    assert_eq!(claimed.placement_error, None);
}
