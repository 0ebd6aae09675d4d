//! Convergence (Diego's converger): compare desired and actual state at one instant and
//! answer every difference as a typed [`Action`]. The caller applies them through the
//! store and auctions what must start; nothing here does I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::Time;
use crate::actual::{ActualLrp, ActualLrpKey, ActualState, Presence};
use crate::cell::{Cell, CellState};
use crate::config::Config;
use crate::crash::may_restart;
use crate::model::DesiredLrp;
use crate::task::{Task, TaskState};

/// Everything convergence looks at.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    pub desired: &'a [DesiredLrp],
    pub actual: &'a [ActualLrp],
    pub tasks: &'a [Task],
    pub cells: &'a [Cell],
}

/// One difference to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The cell stopped heartbeating.
    MarkCellMissing { cell_id: String },
    /// A desired index has no instance: create it UNCLAIMED and auction it.
    CreateInstance { process_guid: String, index: u32 },
    /// An UNCLAIMED instance has waited long enough: auction it again.
    PlaceInstance { key: ActualLrpKey },
    /// Not desired (scaled down or removed): stop it on its cell if it has one, then remove it.
    RetireInstance { key: ActualLrpKey, cell_id: Option<String> },
    /// A CRASHED instance's backoff is over: unclaim and auction it.
    RestartCrashed { key: ActualLrpKey },
    /// Claimed too long ago without running: release the claim and auction it.
    UnclaimStale { key: ActualLrpKey, cell_id: String },
    /// Its cell is missing (or it was only claimed on a draining cell): unclaim and auction it.
    Reschedule { key: ActualLrpKey, cell_id: String },
    /// RUNNING on a draining cell: keep it running as the evacuating copy and auction a replacement.
    Evacuate { key: ActualLrpKey, cell_id: String },
    /// The evacuating copy may stop: its replacement runs (`replaced`), or it timed out or is gone.
    StopEvacuated { key: ActualLrpKey, cell_id: String, replaced: bool },
    /// A PENDING task waited long enough: auction it again.
    PlaceTask { guid: String },
    /// A task that cannot finish: mark it COMPLETED and failed.
    FailTask { guid: String, reason: String },
    /// A COMPLETED task with a callback: deliver it (RESOLVING).
    ResolveTask { guid: String },
    /// A RESOLVING task whose callback took too long: back to COMPLETED to try again.
    DemoteTask { guid: String },
    /// A COMPLETED task past its expiry: remove it.
    DeleteTask { guid: String },
}

fn age(now: Time, since: Time) -> Duration {
    (now - since).try_into().unwrap_or(Duration::ZERO)
}

/// The actions that bring the actual state to the desired one at `now`.
pub fn converge(state: Snapshot<'_>, now: Time, config: &Config) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut cell_state: HashMap<&str, CellState> = HashMap::new();
    for cell in state.cells {
        let silent = age(now, cell.last_heartbeat) > config.cell_missing_after;
        let effective = match cell.state {
            CellState::Present | CellState::Draining if silent => {
                actions.push(Action::MarkCellMissing { cell_id: cell.id.clone() });
                CellState::Missing
            }
            CellState::Present | CellState::Draining | CellState::Missing => cell.state,
        };
        cell_state.insert(&cell.id, effective);
    }
    // A cell nobody knows is as good as missing.
    let on = |cell: &str| cell_state.get(cell).copied().unwrap_or(CellState::Missing);

    let desired: HashMap<&str, &DesiredLrp> = state.desired.iter().map(|d| (d.process_guid.as_str(), d)).collect();
    let mut ordinary: HashMap<(&str, u32), &ActualLrp> = HashMap::new();
    let mut evacuating: Vec<&ActualLrp> = Vec::new();
    for a in state.actual {
        match a.key.presence {
            Presence::Ordinary => {
                ordinary.insert((a.key.process_guid.as_str(), a.key.index), a);
            }
            Presence::Evacuating => evacuating.push(a),
        }
    }

    let mut sorted: Vec<&DesiredLrp> = state.desired.iter().collect();
    sorted.sort_by(|a, b| a.process_guid.cmp(&b.process_guid));
    for d in sorted {
        for index in 0..d.instances {
            if !ordinary.contains_key(&(d.process_guid.as_str(), index)) {
                actions.push(Action::CreateInstance { process_guid: d.process_guid.clone(), index });
            }
        }
    }

    let ordered: BTreeMap<&ActualLrpKey, &ActualLrp> = ordinary.values().map(|a| (&a.key, *a)).collect();
    for (key, a) in ordered {
        let wanted = desired.get(key.process_guid.as_str()).is_some_and(|d| key.index < d.instances);
        let cell = a.cell_id().map(str::to_string);
        if !wanted {
            actions.push(Action::RetireInstance { key: key.clone(), cell_id: cell });
            continue;
        }
        let key = key.clone();
        match (a.state, cell) {
            (ActualState::Unclaimed, _) => {
                if age(now, a.since) >= config.stale_unclaimed_after {
                    actions.push(Action::PlaceInstance { key });
                }
            }
            (ActualState::Crashed, _) => {
                if may_restart(a.crash_count, age(now, a.since)) {
                    actions.push(Action::RestartCrashed { key });
                }
            }
            (ActualState::Claimed | ActualState::Running, None) => {
                actions.push(Action::PlaceInstance { key });
            }
            (ActualState::Claimed, Some(cell_id)) => match on(&cell_id) {
                CellState::Missing | CellState::Draining => actions.push(Action::Reschedule { key, cell_id }),
                CellState::Present => {
                    if age(now, a.since) > config.stale_claim_after {
                        actions.push(Action::UnclaimStale { key, cell_id });
                    }
                }
            },
            (ActualState::Running, Some(cell_id)) => match on(&cell_id) {
                CellState::Missing => actions.push(Action::Reschedule { key, cell_id }),
                CellState::Draining => actions.push(Action::Evacuate { key, cell_id }),
                CellState::Present => {}
            },
        }
    }

    evacuating.sort_by(|a, b| a.key.cmp(&b.key));
    for e in evacuating {
        let cell_id = e.cell_id().unwrap_or_default().to_string();
        let replaced =
            ordinary.get(&(e.key.process_guid.as_str(), e.key.index)).is_some_and(|o| o.state == ActualState::Running);
        let wanted = desired.get(e.key.process_guid.as_str()).is_some_and(|d| e.key.index < d.instances);
        let gone = on(&cell_id) == CellState::Missing;
        if replaced || !wanted || gone || age(now, e.since) >= config.evacuation_timeout {
            actions.push(Action::StopEvacuated { key: e.key.clone(), cell_id, replaced });
        }
    }

    let mut tasks: Vec<&Task> = state.tasks.iter().collect();
    tasks.sort_by(|a, b| a.guid.cmp(&b.guid));
    for t in tasks {
        let guid = t.guid.clone();
        match t.state {
            TaskState::Pending => {
                if age(now, t.created_at) >= config.expire_pending_task_after {
                    actions.push(Action::FailTask { guid, reason: "not started within time limit".into() });
                } else if age(now, t.updated_at) >= config.kick_task_after {
                    actions.push(Action::PlaceTask { guid });
                }
            }
            TaskState::Running => {
                if t.cell_id.as_deref().is_none_or(|c| on(c) == CellState::Missing) {
                    actions.push(Action::FailTask { guid, reason: "cell disappeared before completion".into() });
                }
            }
            TaskState::Completed => {
                let waited = age(now, t.updated_at);
                if waited >= config.expire_completed_task_after {
                    actions.push(Action::DeleteTask { guid });
                } else if t.definition.completion_callback_url.is_some() && waited >= config.kick_task_after {
                    actions.push(Action::ResolveTask { guid });
                }
            }
            TaskState::Resolving => {
                if age(now, t.updated_at) >= config.kick_task_after {
                    actions.push(Action::DemoteTask { guid });
                }
            }
        }
    }
    actions
}

#[cfg(test)]
#[path = "converge_tests.rs"]
mod tests;
