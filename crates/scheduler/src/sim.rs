//! An in-memory world of simulated cells that start, stop and move instances the instant
//! they are told to: convergence, the auction and the boulder planner composed the way the
//! real scheduler composes them, without a database or containers. The benchmark and the
//! composition tests drive it; it does no I/O.

use std::collections::HashMap;

use crate::Time;
use crate::actual::{ActualLrp, ActualLrpEvent, ActualLrpKey, ActualState, Instance, Next, Presence};
use crate::cell::{Cell, CellEvent, CellState};
use crate::config::Config;
use crate::converge::{Action, Snapshot, converge};
use crate::model::DesiredLrp;
use crate::placement::{Auction, PlacementError, Start, Work};
use crate::rebalance::{self, Placed};
use crate::task::{Task, TaskEvent, TaskNext};

/// Desired and actual state, with cells that obey at once.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub desired: Vec<DesiredLrp>,
    pub cells: Vec<Cell>,
    pub tasks: Vec<Task>,
    actual: Vec<ActualLrp>,
    index: HashMap<ActualLrpKey, usize>,
    desired_index: HashMap<String, usize>,
    next_guid: u64,
}

/// What one convergence round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub actions: usize,
    pub placed: usize,
    pub failed: Vec<(Work, PlacementError)>,
    /// Instances moved to make room for boulders.
    pub moved: usize,
}

impl World {
    pub fn new(cells: Vec<Cell>, desired: Vec<DesiredLrp>) -> World {
        let desired_index = desired.iter().enumerate().map(|(i, d)| (d.process_guid.clone(), i)).collect();
        World { desired, cells, desired_index, ..World::default() }
    }

    pub fn actual(&self) -> &[ActualLrp] {
        &self.actual
    }

    pub fn get(&self, key: &ActualLrpKey) -> Option<&ActualLrp> {
        self.index.get(key).map(|&i| &self.actual[i])
    }

    /// Adds an instance as it is (for setting up a scene).
    pub fn put(&mut self, lrp: ActualLrp) {
        match self.index.get(&lrp.key) {
            Some(&i) => self.actual[i] = lrp,
            None => {
                self.index.insert(lrp.key.clone(), self.actual.len());
                self.actual.push(lrp);
            }
        }
    }

    fn remove(&mut self, key: &ActualLrpKey) {
        if let Some(i) = self.index.remove(key) {
            self.actual.swap_remove(i);
            if i < self.actual.len() {
                self.index.insert(self.actual[i].key.clone(), i);
            }
        }
    }

    fn event(&mut self, key: &ActualLrpKey, event: &ActualLrpEvent, now: Time) -> bool {
        let Some(lrp) = self.get(key) else { return false };
        match lrp.apply(event, now) {
            Ok(Next::Becomes(next)) => {
                if next.key != *key {
                    // Evacuation: the copy keeps running under its own key.
                    let fresh = ActualLrp::unclaimed(&key.process_guid, key.index, now);
                    self.put(next);
                    self.put(fresh);
                } else {
                    self.put(next);
                }
                true
            }
            Ok(Next::Removed) => {
                self.remove(key);
                true
            }
            Err(_) => false,
        }
    }

    fn task_event(&mut self, guid: &str, event: &TaskEvent, now: Time) {
        let Some(i) = self.tasks.iter().position(|t| t.guid == guid) else { return };
        match self.tasks[i].apply(event, now) {
            Ok(TaskNext::Becomes(t)) => self.tasks[i] = t,
            Ok(TaskNext::Removed) => {
                self.tasks.remove(i);
            }
            Err(_) => {}
        }
    }

    /// Every cell heartbeats at `now` (except those in `silent`).
    pub fn heartbeat(&mut self, now: Time, silent: &[&str]) {
        for cell in &mut self.cells {
            if !silent.contains(&cell.id.as_str()) && cell.state != CellState::Missing {
                cell.last_heartbeat = now;
            }
        }
    }

    /// The cell crashes an instance it runs (as its container would exit). An instance the
    /// crash policy restarts at once goes straight back to the auction.
    pub fn crash(&mut self, key: &ActualLrpKey, now: Time) -> Round {
        let mut round = Round::default();
        let Some(instance) = self.get(key).and_then(|a| a.instance.clone()) else { return round };
        self.event(key, &ActualLrpEvent::Crash { instance, reason: "exit status 1".into() }, now);
        if self.get(key).is_some_and(|a| a.state == ActualState::Unclaimed) {
            self.auction(vec![key.clone()], Vec::new(), now, &mut round);
        }
        round
    }

    fn desired_of(&self, guid: &str) -> Option<&DesiredLrp> {
        self.desired_index.get(guid).map(|&i| &self.desired[i])
    }

    /// One convergence round at `now`: fix every difference, auction what must start, let
    /// the cells start it, and plan boulder moves for what did not fit.
    pub fn converge(&mut self, now: Time, config: &Config) -> Round {
        let actions = {
            let snapshot =
                Snapshot { desired: &self.desired, actual: &self.actual, tasks: &self.tasks, cells: &self.cells };
            converge(snapshot, now, config)
        };
        let mut round = Round { actions: actions.len(), ..Round::default() };
        let mut starts: Vec<ActualLrpKey> = Vec::new();
        let mut task_starts: Vec<String> = Vec::new();
        for action in actions {
            match action {
                Action::MarkCellMissing { cell_id } => {
                    if let Some(c) = self.cells.iter_mut().find(|c| c.id == cell_id)
                        && let Ok(next) = c.apply(CellEvent::MarkMissing, now)
                    {
                        *c = next;
                    }
                }
                Action::CreateInstance { process_guid, index } => {
                    self.put(ActualLrp::unclaimed(&process_guid, index, now));
                    starts.push(ActualLrpKey::ordinary(&process_guid, index));
                }
                Action::PlaceInstance { key } => starts.push(key),
                Action::RetireInstance { key, .. } | Action::StopEvacuated { key, .. } => {
                    self.event(&key, &ActualLrpEvent::Remove, now);
                }
                Action::RestartCrashed { key } | Action::UnclaimStale { key, .. } | Action::Reschedule { key, .. } => {
                    self.event(&key, &ActualLrpEvent::Unclaim, now);
                    starts.push(key);
                }
                Action::Evacuate { key, .. } => {
                    self.event(&key, &ActualLrpEvent::Evacuate, now);
                    starts.push(key);
                }
                Action::PlaceTask { guid } => task_starts.push(guid),
                Action::FailTask { guid, reason } => self.task_event(&guid, &TaskEvent::Fail { reason }, now),
                Action::ResolveTask { guid } => {
                    self.task_event(&guid, &TaskEvent::Resolving, now);
                    self.task_event(&guid, &TaskEvent::Resolve, now);
                }
                Action::DemoteTask { guid } => self.task_event(&guid, &TaskEvent::Demote, now),
                Action::DeleteTask { guid } => self.task_event(&guid, &TaskEvent::Resolve, now),
            }
        }
        self.auction(starts, task_starts, now, &mut round);
        round
    }

    fn auction_now(&self) -> Auction {
        let mut auction = Auction::new(&self.cells);
        for a in &self.actual {
            if let (Some(cell), Some(d)) = (a.cell_id(), self.desired_of(&a.key.process_guid)) {
                auction.allocate(cell, Some(&d.process_guid), &Start::lrp(d, a.key.index).need);
            }
        }
        for t in &self.tasks {
            if let Some(cell) = &t.cell_id {
                auction.allocate(cell, None, &Start::task(t).need);
            }
        }
        auction
    }

    fn run_on(&mut self, key: &ActualLrpKey, cell_id: &str, now: Time) {
        self.next_guid += 1;
        let instance = Instance { cell_id: cell_id.into(), instance_guid: format!("instance-{}", self.next_guid) };
        self.event(key, &ActualLrpEvent::Claim(instance.clone()), now);
        let start = ActualLrpEvent::Start {
            instance,
            address: format!("{cell_id}.internal"),
            ports: vec![],
            preferred_address: Default::default(),
        };
        self.event(key, &start, now);
    }

    fn auction(&mut self, keys: Vec<ActualLrpKey>, task_guids: Vec<String>, now: Time, round: &mut Round) {
        if keys.is_empty() && task_guids.is_empty() {
            return;
        }
        let mut auction = self.auction_now();
        let mut batch = Vec::with_capacity(keys.len());
        for key in &keys {
            if let (Some(d), Some(a)) = (self.desired_of(&key.process_guid), self.get(key))
                && a.state == ActualState::Unclaimed
            {
                batch.push(Start::lrp(d, key.index));
            }
        }
        batch.extend(self.tasks.iter().filter(|t| task_guids.contains(&t.guid)).map(Start::task));
        let result = auction.run(batch);
        for (start, cell) in &result.placed {
            match &start.work {
                Work::Lrp { process_guid, index } => {
                    self.run_on(&ActualLrpKey::ordinary(process_guid, *index), cell, now)
                }
                Work::Task { guid } => self.task_event(guid, &TaskEvent::Start { cell_id: cell.clone() }, now),
            }
            round.placed += 1;
        }
        for (start, error) in result.failed {
            if let (Work::Lrp { process_guid, index }, PlacementError::InsufficientResources { .. }) =
                (&start.work, &error)
                && self.move_for_boulder(&mut auction, &start, now, round)
                && let Ok(cell) = auction.place_one(&start, None)
            {
                self.run_on(&ActualLrpKey::ordinary(process_guid, *index), &cell, now);
                round.placed += 1;
                continue;
            }
            if let Work::Lrp { process_guid, index } = &start.work {
                let reason = error.to_string();
                self.event(
                    &ActualLrpKey::ordinary(process_guid, *index),
                    &ActualLrpEvent::FailPlacement { reason },
                    now,
                );
            }
            round.failed.push((start.work, error));
        }
    }

    /// Plans and carries out boulder moves: each instance starts on its new cell first and
    /// its old copy stops after. Answers whether the boulder now fits.
    fn move_for_boulder(&mut self, auction: &mut Auction, boulder: &Start, now: Time, round: &mut Round) -> bool {
        let placed: Vec<Placed> = self
            .actual
            .iter()
            .filter(|a| a.state == ActualState::Running && a.key.presence == Presence::Ordinary)
            .filter_map(|a| {
                let d = self.desired_of(&a.key.process_guid)?;
                let start = Start::lrp(d, a.key.index);
                Some(Placed { key: a.key.clone(), cell_id: a.cell_id()?.to_string(), need: start.need, start })
            })
            .collect();
        let Some(plan) = rebalance::plan(auction, &placed, boulder) else { return false };
        for m in &plan.moves {
            let Some(p) = placed.iter().find(|p| p.key == m.key) else { return false };
            // Start elsewhere first: the running copy becomes the evacuating one, the
            // ordinary instance starts on the new cell, then the old copy stops.
            self.event(&m.key, &ActualLrpEvent::Evacuate, now);
            auction.allocate(&m.to, Some(&m.key.process_guid), &p.need);
            self.run_on(&m.key, &m.to, now);
            let evacuating = ActualLrpKey { presence: Presence::Evacuating, ..m.key.clone() };
            self.event(&evacuating, &ActualLrpEvent::Remove, now);
            auction.release(&m.from, Some(&m.key.process_guid), &p.need);
            round.moved += 1;
        }
        auction.free(&plan.target).is_some_and(|f| f.fits(&boulder.need))
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
