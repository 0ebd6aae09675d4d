//! The two directions between a cell and the scheduler, as traits, so a cell runs the same
//! beside the scheduler (in one process) and on another machine (over HTTP):
//!
//! - [`SchedulerLink`]: what a cell asks of and reports to the scheduler's store (register,
//!   heartbeat, claim, start, crash, remove, task changes). `SchedulerStore` is the in-process
//!   link; `hearth`'s cell client is the remote one.
//! - [`CellHandle`]: what the scheduler's loop tells a cell (run this instance or task,
//!   stop, forget, cancel). A [`Rep`](crate::Rep) is the in-process handle; `hearth`'s cell
//!   endpoint forwards the same commands to a cell on another machine.
//!
//! Invariant: every command is idempotent and may be lost (a cell that was unreachable
//! catches up from the store: see `Rep::reconcile`), so neither side needs delivery
//! guarantees.

use hearth_scheduler::actual::{Instance, PortMapping};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{
    ActualLrp, ActualLrpEvent, ActualLrpKey, Cell, CellEvent, DesiredLrp, PreferredAddress, Result, Task, TaskEvent,
};
use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use crate::rep::{BoxFuture, Rep};

/// A cell's view of the scheduler.
pub trait SchedulerLink: Send + Sync + 'static {
    /// Registers (or re-registers) the cell.
    fn register_cell(&self, cell: Cell) -> BoxFuture<'_, Result<Cell>>;
    fn change_cell<'a>(&'a self, id: &'a str, event: CellEvent) -> BoxFuture<'a, Result<Cell>>;
    fn desired_lrp<'a>(&'a self, process_guid: &'a str) -> BoxFuture<'a, Result<Option<DesiredLrp>>>;
    fn actual_lrp<'a>(&'a self, key: &'a ActualLrpKey) -> BoxFuture<'a, Result<Option<ActualLrp>>>;
    /// Instances held by one cell (what it should be running).
    fn actual_lrps_on_cell<'a>(&'a self, cell_id: &'a str) -> BoxFuture<'a, Result<Vec<ActualLrp>>>;
    fn change_actual<'a>(
        &'a self,
        key: &'a ActualLrpKey,
        event: ActualLrpEvent,
    ) -> BoxFuture<'a, Result<Option<ActualLrp>>>;
    fn task<'a>(&'a self, guid: &'a str) -> BoxFuture<'a, Result<Option<Task>>>;
    /// Tasks placed on or running on one cell.
    fn tasks_on_cell<'a>(&'a self, cell_id: &'a str) -> BoxFuture<'a, Result<Vec<Task>>>;
    fn change_task<'a>(&'a self, guid: &'a str, event: TaskEvent) -> BoxFuture<'a, Result<Option<Task>>>;

    fn claim_actual<'a>(&'a self, key: &'a ActualLrpKey, by: Instance) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        self.change_actual(key, ActualLrpEvent::Claim(by))
    }

    fn start_actual<'a>(
        &'a self,
        key: &'a ActualLrpKey,
        instance: Instance,
        address: &'a str,
        ports: Vec<PortMapping>,
        preferred_address: PreferredAddress,
    ) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        self.change_actual(key, ActualLrpEvent::Start { instance, address: address.into(), ports, preferred_address })
    }

    fn crash_actual<'a>(
        &'a self,
        key: &'a ActualLrpKey,
        instance: Instance,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        self.change_actual(key, ActualLrpEvent::Crash { instance, reason: reason.into() })
    }

    fn remove_actual<'a>(&'a self, key: &'a ActualLrpKey) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.change_actual(key, ActualLrpEvent::Remove).await.map(|_| ()) })
    }
}

impl SchedulerLink for SchedulerStore {
    fn register_cell(&self, cell: Cell) -> BoxFuture<'_, Result<Cell>> {
        Box::pin(SchedulerStore::register_cell(self, cell))
    }

    fn change_cell<'a>(&'a self, id: &'a str, event: CellEvent) -> BoxFuture<'a, Result<Cell>> {
        Box::pin(SchedulerStore::change_cell(self, id, event))
    }

    fn desired_lrp<'a>(&'a self, process_guid: &'a str) -> BoxFuture<'a, Result<Option<DesiredLrp>>> {
        Box::pin(SchedulerStore::desired_lrp(self, process_guid))
    }

    fn actual_lrp<'a>(&'a self, key: &'a ActualLrpKey) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        Box::pin(SchedulerStore::actual_lrp(self, key))
    }

    fn actual_lrps_on_cell<'a>(&'a self, cell_id: &'a str) -> BoxFuture<'a, Result<Vec<ActualLrp>>> {
        Box::pin(SchedulerStore::actual_lrps_on_cell(self, cell_id))
    }

    fn change_actual<'a>(
        &'a self,
        key: &'a ActualLrpKey,
        event: ActualLrpEvent,
    ) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        Box::pin(async move { SchedulerStore::change_actual(self, key, &event).await })
    }

    fn task<'a>(&'a self, guid: &'a str) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(SchedulerStore::task(self, guid))
    }

    fn tasks_on_cell<'a>(&'a self, cell_id: &'a str) -> BoxFuture<'a, Result<Vec<Task>>> {
        Box::pin(async move {
            let tasks = SchedulerStore::tasks(self).await?;
            Ok(tasks.into_iter().filter(|t| t.cell_id.as_deref() == Some(cell_id)).collect())
        })
    }

    fn change_task<'a>(&'a self, guid: &'a str, event: TaskEvent) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(async move { SchedulerStore::change_task(self, guid, &event).await })
    }
}

/// What the scheduler's loop tells a cell; each is idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Claim and run an auctioned instance.
    Perform { key: ActualLrpKey },
    /// Stop an instance gracefully and remove it from the store.
    Stop { key: ActualLrpKey },
    /// Stop the container of an instance the store no longer gives this cell.
    Forget { instance_guid: String },
    /// Start a placed task.
    RunTask { guid: String },
    /// Stop a task that no longer runs in the store (cancelled).
    CancelTask { guid: String },
}

/// A cell as the scheduler's loop reaches it.
pub trait CellHandle: Send + Sync + 'static {
    fn id(&self) -> &str;
    /// Carries out `command` in the background.
    fn send(&self, command: Command);
}

impl CellHandle for Rep {
    fn id(&self) -> &str {
        Rep::id(self)
    }

    fn send(&self, command: Command) {
        match command {
            Command::Perform { key } => self.perform(key),
            Command::RunTask { guid } => self.run_task(guid),
            Command::CancelTask { guid } => self.cancel_task(&guid),
            Command::Stop { key } => {
                let rep = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = rep.stop(&key).await {
                        tracing::warn!(%key, error = %e, "stopping an instance failed");
                    }
                });
            }
            Command::Forget { instance_guid } => {
                let rep = self.clone();
                tokio::spawn(async move { rep.forget(&instance_guid).await });
            }
        }
    }
}

impl Rep {
    /// Catches up with the store after commands may have been lost (a cell on another
    /// machine that was unreachable for a while): stops the containers of instances the
    /// store no longer gives this cell, and of tasks that no longer run here.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let me = &self.inner.config.id;
        let held: BTreeSet<String> = self
            .inner
            .sched
            .actual_lrps_on_cell(me)
            .await?
            .into_iter()
            .filter_map(|a| a.instance.filter(|i| i.cell_id == *me).map(|i| i.instance_guid))
            .collect();
        let stale: Vec<String> = {
            let running = self.inner.running.lock().expect("not poisoned");
            running.values().map(|w| w.instance_guid.clone()).filter(|g| !held.contains(g)).collect()
        };
        for guid in stale {
            // Claimed after the read above? Then the store holds it now: keep it.
            let still = self.inner.sched.actual_lrps_on_cell(me).await?;
            if still.iter().any(|a| a.instance.as_ref().is_some_and(|i| i.instance_guid == guid)) {
                continue;
            }
            tracing::info!(instance = %guid, "stopping an instance the store no longer gives this cell");
            self.forget(&guid).await;
        }
        let running_here: BTreeSet<String> = self
            .inner
            .sched
            .tasks_on_cell(me)
            .await?
            .into_iter()
            .filter(|t| t.state == hearth_scheduler::TaskState::Running)
            .map(|t| t.guid)
            .collect();
        let watched: Vec<String> = self.inner.tasks.lock().expect("not poisoned").keys().cloned().collect();
        for guid in watched.into_iter().filter(|g| !running_here.contains(g)) {
            self.cancel_task(&guid);
        }
        Ok(())
    }
}
