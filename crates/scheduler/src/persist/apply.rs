//! Carrying out convergence's actions through the store, and holding an auction over the
//! stored state. What only a cell can do (stop a container, deliver a callback) comes back
//! as a [`FollowUp`] for the caller.

use crate::actual::{ActualLrpEvent, ActualLrpKey, ActualState, Presence};
use crate::cell::CellEvent;
use crate::converge::Action;
use crate::placement::{Auction, AuctionResult, PlacementError, Start, Work};
use crate::task::{TaskEvent, TaskState};
use crate::{Error, Result};

use super::SchedulerStore;

/// What is left to do once an action is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    Nothing,
    /// Auction this instance (it is UNCLAIMED now).
    PlaceInstance(ActualLrpKey),
    /// Auction this PENDING task.
    PlaceTask(String),
    /// The cell must stop this instance's container, then remove the instance.
    StopOnCell {
        cell_id: String,
        key: ActualLrpKey,
    },
    /// POST the task's result to its completion callback, then resolve it.
    DeliverCallback(String),
}

impl SchedulerStore {
    /// Records one convergence action. An action overtaken by another writer (the row
    /// changed or went away meanwhile) is skipped: the next round looks again.
    pub async fn apply(&self, action: &Action) -> Result<FollowUp> {
        let outcome = self.apply_strict(action).await;
        match outcome {
            Err(Error::Stale { .. } | Error::NotFound { .. } | Error::AlreadyExists { .. }) => Ok(FollowUp::Nothing),
            other => other,
        }
    }

    async fn apply_strict(&self, action: &Action) -> Result<FollowUp> {
        Ok(match action {
            Action::MarkCellMissing { cell_id } => {
                self.change_cell(cell_id, CellEvent::MarkMissing).await?;
                FollowUp::Nothing
            }
            Action::CreateInstance { process_guid, index } => {
                FollowUp::PlaceInstance(self.create_actual(process_guid, *index).await?.key)
            }
            Action::PlaceInstance { key } => FollowUp::PlaceInstance(key.clone()),
            Action::RetireInstance { key, cell_id: Some(cell_id) } | Action::StopEvacuated { key, cell_id, .. } => {
                if self.cell_gone(cell_id).await? {
                    // Nobody is left to stop it: forget it.
                    self.remove_actual(key).await?;
                    FollowUp::Nothing
                } else {
                    FollowUp::StopOnCell { cell_id: cell_id.clone(), key: key.clone() }
                }
            }
            Action::RetireInstance { key, cell_id: None } => {
                self.remove_actual(key).await?;
                FollowUp::Nothing
            }
            Action::RestartCrashed { key } | Action::UnclaimStale { key, .. } | Action::Reschedule { key, .. } => {
                self.change_actual(key, &ActualLrpEvent::Unclaim).await?;
                FollowUp::PlaceInstance(key.clone())
            }
            Action::Evacuate { key, .. } => {
                self.change_actual(key, &ActualLrpEvent::Evacuate).await?;
                FollowUp::PlaceInstance(ActualLrpKey { presence: Presence::Ordinary, ..key.clone() })
            }
            Action::PlaceTask { guid } => FollowUp::PlaceTask(guid.clone()),
            Action::FailTask { guid, reason } => {
                self.change_task(guid, &TaskEvent::Fail { reason: reason.clone() }).await?;
                FollowUp::Nothing
            }
            Action::ResolveTask { guid } => {
                self.change_task(guid, &TaskEvent::Resolving).await?;
                FollowUp::DeliverCallback(guid.clone())
            }
            Action::DemoteTask { guid } => {
                self.change_task(guid, &TaskEvent::Demote).await?;
                FollowUp::Nothing
            }
            Action::DeleteTask { guid } => {
                self.change_task(guid, &TaskEvent::Resolve).await?;
                FollowUp::Nothing
            }
        })
    }

    async fn cell_gone(&self, id: &str) -> Result<bool> {
        let mut conn = self.store.conn().await?;
        Ok(match hearth_store::get::<hearth_store::CellRow>(&mut conn, id).await? {
            Some(row) => super::rows::cell(&row)?.state == crate::cell::CellState::Missing,
            None => true,
        })
    }

    /// Auctions UNCLAIMED instances and PENDING tasks over the stored cells and what they
    /// already hold. Placed work goes to its cell (which claims it); an instance that fits
    /// nowhere gets its placement error recorded, a task that fits nowhere fails with it.
    pub async fn auction(&self, instances: &[ActualLrpKey], tasks: &[String]) -> Result<AuctionResult> {
        self.auction_with(instances, tasks, &[]).await
    }

    /// `auction`, also counting instances already handed to a cell that has not claimed
    /// them yet (`in_flight`: cell id and instance): a round must not pile onto the cell an
    /// earlier round just chose because its claims have not landed.
    pub async fn auction_with(
        &self,
        instances: &[ActualLrpKey],
        tasks: &[String],
        in_flight: &[(String, ActualLrpKey)],
    ) -> Result<AuctionResult> {
        let state = self.state().await?;
        let desired: std::collections::HashMap<&str, &crate::DesiredLrp> =
            state.desired.iter().map(|d| (d.process_guid.as_str(), d)).collect();
        let mut auction = auction_over(&state, &desired, in_flight);
        let unclaimed =
            |k: &ActualLrpKey| state.actual.iter().any(|a| &a.key == k && a.state == ActualState::Unclaimed);
        let mut batch: Vec<Start> = instances
            .iter()
            .filter(|k| unclaimed(k))
            .filter_map(|k| desired.get(k.process_guid.as_str()).map(|d| Start::lrp(d, k.index)))
            .collect();
        batch.extend(
            state.tasks.iter().filter(|t| t.state == TaskState::Pending && tasks.contains(&t.guid)).map(Start::task),
        );
        let result = auction.run(batch);
        for (start, error) in &result.failed {
            self.record_refusal(start, error).await?;
        }
        Ok(result)
    }

    /// Plans moves of smaller running instances that make room for `boulder` (refused
    /// for memory although the cells have enough free memory together): see
    /// [`rebalance::plan`](crate::rebalance::plan). `None` when no plan helps.
    pub async fn plan_room(
        &self,
        boulder: &ActualLrpKey,
        in_flight: &[(String, ActualLrpKey)],
    ) -> Result<Option<crate::rebalance::Plan>> {
        let state = self.state().await?;
        let desired: std::collections::HashMap<&str, &crate::DesiredLrp> =
            state.desired.iter().map(|d| (d.process_guid.as_str(), d)).collect();
        let Some(d) = desired.get(boulder.process_guid.as_str()) else { return Ok(None) };
        let auction = auction_over(&state, &desired, in_flight);
        let placed: Vec<crate::rebalance::Placed> = state
            .actual
            .iter()
            .filter(|a| a.state == ActualState::Running && a.key.presence == Presence::Ordinary)
            .filter_map(|a| {
                let start = Start::lrp(desired.get(a.key.process_guid.as_str())?, a.key.index);
                let cell_id = a.cell_id()?.to_string();
                Some(crate::rebalance::Placed { key: a.key.clone(), cell_id, need: start.need, start })
            })
            .collect();
        Ok(crate::rebalance::plan(&auction, &placed, &Start::lrp(d, boulder.index)))
    }

    async fn record_refusal(&self, start: &Start, error: &PlacementError) -> Result<()> {
        let outcome = match &start.work {
            Work::Lrp { process_guid, index } => {
                let key = ActualLrpKey::ordinary(process_guid, *index);
                self.change_actual(&key, &ActualLrpEvent::FailPlacement { reason: error.to_string() }).await.map(|_| ())
            }
            Work::Task { guid } => {
                self.change_task(guid, &TaskEvent::Fail { reason: error.to_string() }).await.map(|_| ())
            }
        };
        match outcome {
            Err(Error::Stale { .. } | Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }
}

/// The cells with what they hold: every instance placed on one, instances handed to a
/// cell that has not claimed them yet (`in_flight`), and running tasks.
fn auction_over(
    state: &super::State,
    desired: &std::collections::HashMap<&str, &crate::DesiredLrp>,
    in_flight: &[(String, ActualLrpKey)],
) -> Auction {
    let mut auction = Auction::new(&state.cells);
    for a in &state.actual {
        if let (Some(cell), Some(d)) = (a.cell_id(), desired.get(a.key.process_guid.as_str())) {
            auction.allocate(cell, Some(&d.process_guid), &Start::lrp(d, a.key.index).need);
        }
    }
    for (cell, key) in in_flight {
        let waiting = state.actual.iter().any(|a| &a.key == key && a.state == ActualState::Unclaimed);
        if let (true, Some(d)) = (waiting, desired.get(key.process_guid.as_str())) {
            auction.allocate(cell, Some(&d.process_guid), &Start::lrp(d, key.index).need);
        }
    }
    for t in state.tasks.iter().filter(|t| t.state == TaskState::Running) {
        if let Some(cell) = &t.cell_id {
            auction.allocate(cell, None, &Start::task(t).need);
        }
    }
    auction
}
