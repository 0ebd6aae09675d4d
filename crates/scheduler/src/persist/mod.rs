//! The scheduler's I/O edge: its state in hearth-store, written in transactions with
//! compare-and-swap on each row's version, every committed change published as an
//! [`Event`]. The decisions stay in the pure modules: each write loads the row, asks the
//! transition table, and writes the answer only if nobody changed the row meanwhile.

mod apply;
mod rows;

pub use apply::FollowUp;

use std::sync::Arc;

use hearth_store::{self as store, ActualLrpRow, CellRow, Cond, DesiredLrpRow, Store, TaskRow, Tx, Value};

use crate::actual::{
    ActualLrp, ActualLrpEvent, ActualLrpKey, ActualState, Instance, Next, PortMapping, PreferredAddress, Presence,
};
use crate::cell::{Cell, CellEvent, CellState};
use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::model::{DesiredLrp, DesiredLrpUpdate};
use crate::task::{Task, TaskDefinition, TaskEvent, TaskNext};
use crate::{Error, Result};

/// Everything convergence needs, read at one time.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub desired: Vec<DesiredLrp>,
    pub actual: Vec<ActualLrp>,
    pub tasks: Vec<Task>,
    pub cells: Vec<Cell>,
}

/// The scheduler's state in the store; cheap to clone (clones share one event stream).
#[derive(Clone)]
pub struct SchedulerStore {
    store: Store,
    events: Events,
    clock: Arc<dyn Clock>,
}

fn conflict_as(what: String) -> impl FnOnce(hearth_store::Error) -> Error {
    move |e| match e {
        hearth_store::Error::Conflict(_) => Error::AlreadyExists { what },
        other => Error::Store(other),
    }
}

fn stale(what: impl std::fmt::Display, expected: i64) -> Error {
    Error::Stale { what: what.to_string(), expected }
}

impl SchedulerStore {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> SchedulerStore {
        SchedulerStore { store, events: Events::default(), clock }
    }

    /// A receiver of every change committed from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs `body` in one write transaction: on success commits and publishes its events,
    /// on failure rolls back before the write lock is let go, so a refused write changes nothing.
    async fn write<T>(&self, body: impl AsyncFnOnce(&mut Tx) -> Result<(T, Vec<Event>)>) -> Result<T> {
        let mut tx = self.store.begin().await?;
        match body(&mut tx).await {
            Ok((value, events)) => {
                tx.commit().await?;
                self.events.publish(events);
                Ok(value)
            }
            Err(e) => {
                // The original error says more than a failed rollback would.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    // ---- desired LRPs ----

    /// Desires a new LRP and creates its instances UNCLAIMED, ready for the auction.
    pub async fn desire_lrp(&self, mut lrp: DesiredLrp) -> Result<DesiredLrp> {
        lrp.validate()?;
        lrp.version = 0;
        let now = self.clock.now();
        self.write(async |tx| {
            let row = rows::desired_row(&lrp, &store::format_time(now), now);
            store::insert(tx, &row).await.map_err(conflict_as(format!("desired LRP {}", lrp.process_guid)))?;
            let mut events = vec![Event::DesiredCreated(lrp.clone())];
            self.create_missing(tx, &lrp, 0, &mut events).await?;
            Ok((lrp.clone(), events))
        })
        .await
    }

    async fn create_missing(&self, tx: &mut Tx, lrp: &DesiredLrp, from: u32, events: &mut Vec<Event>) -> Result<()> {
        let now = self.clock.now();
        for index in from..lrp.instances {
            let actual = ActualLrp::unclaimed(&lrp.process_guid, index, now);
            if store::get::<ActualLrpRow>(tx, &actual.key.to_string()).await?.is_none() {
                store::insert(tx, &rows::actual_row(&actual)).await?;
                events.push(Event::ActualCreated(actual));
            }
        }
        Ok(())
    }

    /// Removes ordinary instances from `min_index` up that no cell holds (UNCLAIMED, CRASHED);
    /// instances on cells are left for convergence to stop there.
    async fn drop_idle(&self, tx: &mut Tx, guid: &str, min_index: u32, events: &mut Vec<Event>) -> Result<()> {
        let conds = vec![Cond::Eq("process_guid", Value::Text(guid.into()))];
        for row in store::find_all::<ActualLrpRow>(tx, conds).await? {
            let a = rows::actual(&row)?;
            let idle = matches!(a.state, ActualState::Unclaimed | ActualState::Crashed);
            if a.key.presence == Presence::Ordinary && a.key.index >= min_index && idle {
                if !store::delete_versioned::<ActualLrpRow>(tx, &row.instance_key, a.version).await? {
                    return Err(stale(&a.key, a.version));
                }
                events.push(Event::ActualRemoved(a));
            }
        }
        Ok(())
    }

    /// Changes a desired LRP if it is still at `expected_version`. Scaling up creates the
    /// new instances; scaling down removes idle extras at once (running ones are retired by convergence).
    pub async fn update_desired_lrp(
        &self,
        guid: &str,
        update: &DesiredLrpUpdate,
        expected_version: i64,
    ) -> Result<DesiredLrp> {
        let now = self.clock.now();
        self.write(async |tx| {
            let row = store::get::<DesiredLrpRow>(tx, guid)
                .await?
                .ok_or_else(|| Error::NotFound { what: format!("desired LRP {guid}") })?;
            let before = rows::desired(&row)?;
            if before.version != expected_version {
                return Err(stale(format!("desired LRP {guid}"), expected_version));
            }
            let after = update.apply(&before)?;
            if !store::update_versioned(tx, &rows::desired_row(&after, &row.created_at, now), before.version).await? {
                return Err(stale(format!("desired LRP {guid}"), expected_version));
            }
            let mut events = vec![Event::DesiredChanged { before: before.clone(), after: after.clone() }];
            if after.instances > before.instances {
                self.create_missing(tx, &after, before.instances, &mut events).await?;
            } else if after.instances < before.instances {
                self.drop_idle(tx, guid, after.instances, &mut events).await?;
            }
            Ok((after, events))
        })
        .await
    }

    /// Removes a desired LRP and its idle instances; running ones are retired by convergence.
    pub async fn remove_desired_lrp(&self, guid: &str) -> Result<()> {
        self.write(async |tx| {
            let row = store::get::<DesiredLrpRow>(tx, guid)
                .await?
                .ok_or_else(|| Error::NotFound { what: format!("desired LRP {guid}") })?;
            let before = rows::desired(&row)?;
            if !store::delete_versioned::<DesiredLrpRow>(tx, guid, before.version).await? {
                return Err(stale(format!("desired LRP {guid}"), before.version));
            }
            let mut events = vec![Event::DesiredRemoved(before)];
            self.drop_idle(tx, guid, 0, &mut events).await?;
            Ok(((), events))
        })
        .await
    }

    pub async fn desired_lrp(&self, guid: &str) -> Result<Option<DesiredLrp>> {
        let mut conn = self.store.conn().await?;
        store::get::<DesiredLrpRow>(&mut conn, guid).await?.as_ref().map(rows::desired).transpose()
    }

    pub async fn desired_lrps(&self) -> Result<Vec<DesiredLrp>> {
        let mut conn = self.store.conn().await?;
        store::find_all::<DesiredLrpRow>(&mut conn, vec![]).await?.iter().map(rows::desired).collect()
    }

    /// The desired LRPs of one app (Diego's domain).
    pub async fn desired_lrps_for_app(&self, app_guid: &str) -> Result<Vec<DesiredLrp>> {
        let mut conn = self.store.conn().await?;
        let rows: Vec<DesiredLrpRow> =
            store::find_all(&mut conn, vec![store::Cond::Eq("app_guid", store::Value::Text(app_guid.into()))]).await?;
        rows.iter().map(rows::desired).collect()
    }

    // ---- actual LRPs ----

    /// Creates the UNCLAIMED instance for a desired index that has none (convergence's `CreateInstance`).
    pub async fn create_actual(&self, process_guid: &str, index: u32) -> Result<ActualLrp> {
        self.write(async |tx| {
            let desired = store::get::<DesiredLrpRow>(tx, process_guid)
                .await?
                .ok_or_else(|| Error::NotFound { what: format!("desired LRP {process_guid}") })?;
            if i64::from(index) >= desired.instances {
                return Err(Error::Invalid {
                    what: format!("instance {process_guid}/{index}"),
                    why: format!("only {} instances are desired", desired.instances),
                });
            }
            let actual = ActualLrp::unclaimed(process_guid, index, self.clock.now());
            store::insert(tx, &rows::actual_row(&actual)).await.map_err(conflict_as(actual.key.to_string()))?;
            Ok((actual.clone(), vec![Event::ActualCreated(actual)]))
        })
        .await
    }

    /// Applies one event to one instance: load, transition, compare-and-swap, publish.
    /// Answers the instance afterwards (`None` once removed).
    pub async fn change_actual(&self, key: &ActualLrpKey, event: &ActualLrpEvent) -> Result<Option<ActualLrp>> {
        let now = self.clock.now();
        self.write(async |tx| {
            let before = match store::get::<ActualLrpRow>(tx, &key.to_string()).await? {
                Some(row) => rows::actual(&row)?,
                None => return Err(Error::NotFound { what: format!("actual LRP {key}") }),
            };
            let (events, answer) = match before.apply(event, now)? {
                Next::Becomes(after) if after == before => return Ok((Some(after), vec![])),
                Next::Becomes(after) if after.key != before.key => {
                    // Evacuation: the running copy moves to its evacuating key, a fresh UNCLAIMED
                    // instance takes the ordinary key for the auction.
                    store::insert(tx, &rows::actual_row(&after)).await.map_err(conflict_as(after.key.to_string()))?;
                    let replacement = ActualLrp {
                        version: before.version + 1,
                        ..ActualLrp::unclaimed(&key.process_guid, key.index, now)
                    };
                    if !store::update_versioned(tx, &rows::actual_row(&replacement), before.version).await? {
                        return Err(stale(key, before.version));
                    }
                    let events =
                        vec![Event::ActualCreated(after.clone()), Event::ActualChanged { before, after: replacement }];
                    (events, Some(after))
                }
                Next::Becomes(after) => {
                    if !store::update_versioned(tx, &rows::actual_row(&after), before.version).await? {
                        return Err(stale(key, before.version));
                    }
                    (vec![Event::ActualChanged { before, after: after.clone() }], Some(after))
                }
                Next::Removed => {
                    if !store::delete_versioned::<ActualLrpRow>(tx, &key.to_string(), before.version).await? {
                        return Err(stale(key, before.version));
                    }
                    (vec![Event::ActualRemoved(before)], None)
                }
            };
            Ok((answer, events))
        })
        .await
    }

    pub async fn claim_actual(&self, key: &ActualLrpKey, by: Instance) -> Result<Option<ActualLrp>> {
        self.change_actual(key, &ActualLrpEvent::Claim(by)).await
    }

    pub async fn start_actual(
        &self,
        key: &ActualLrpKey,
        instance: Instance,
        address: &str,
        ports: Vec<PortMapping>,
    ) -> Result<Option<ActualLrp>> {
        self.start_actual_at(key, instance, address, ports, PreferredAddress::Instance).await
    }

    /// `start_actual`, saying whether `address` is the container's or its cell machine's.
    pub async fn start_actual_at(
        &self,
        key: &ActualLrpKey,
        instance: Instance,
        address: &str,
        ports: Vec<PortMapping>,
        preferred_address: PreferredAddress,
    ) -> Result<Option<ActualLrp>> {
        let event = ActualLrpEvent::Start { instance, address: address.into(), ports, preferred_address };
        self.change_actual(key, &event).await
    }

    pub async fn crash_actual(
        &self,
        key: &ActualLrpKey,
        instance: Instance,
        reason: &str,
    ) -> Result<Option<ActualLrp>> {
        self.change_actual(key, &ActualLrpEvent::Crash { instance, reason: reason.into() }).await
    }

    pub async fn remove_actual(&self, key: &ActualLrpKey) -> Result<()> {
        self.change_actual(key, &ActualLrpEvent::Remove).await.map(|_| ())
    }

    pub async fn actual_lrp(&self, key: &ActualLrpKey) -> Result<Option<ActualLrp>> {
        let mut conn = self.store.conn().await?;
        store::get::<ActualLrpRow>(&mut conn, &key.to_string()).await?.as_ref().map(rows::actual).transpose()
    }

    /// Instances of one process, or all of them.
    pub async fn actual_lrps(&self, process_guid: Option<&str>) -> Result<Vec<ActualLrp>> {
        let conds = process_guid.map(|g| Cond::Eq("process_guid", Value::Text(g.into()))).into_iter().collect();
        let mut conn = self.store.conn().await?;
        store::find_all::<ActualLrpRow>(&mut conn, conds).await?.iter().map(rows::actual).collect()
    }

    /// Instances held by one cell (what it should be running).
    pub async fn actual_lrps_on_cell(&self, cell_id: &str) -> Result<Vec<ActualLrp>> {
        let conds = vec![Cond::Eq("cell_id", Value::Text(cell_id.into()))];
        let mut conn = self.store.conn().await?;
        store::find_all::<ActualLrpRow>(&mut conn, conds).await?.iter().map(rows::actual).collect()
    }

    // ---- cells ----

    /// Registers a cell (or re-registers it with new capacity): present (a draining cell
    /// stays draining), heartbeat now.
    pub async fn register_cell(&self, mut cell: Cell) -> Result<Cell> {
        cell.validate()?;
        cell.state = CellState::Present;
        cell.last_heartbeat = self.clock.now();
        self.write(async |tx| {
            let event = match store::get::<CellRow>(tx, &cell.id).await? {
                Some(row) => {
                    let before = rows::cell(&row)?;
                    cell.version = before.version + 1;
                    if before.state == CellState::Draining {
                        cell.state = CellState::Draining;
                    }
                    if !store::update_versioned(tx, &rows::cell_row(&cell), before.version).await? {
                        return Err(stale(format!("cell {}", cell.id), before.version));
                    }
                    Event::CellChanged { before, after: cell.clone() }
                }
                None => {
                    cell.version = 0;
                    store::insert(tx, &rows::cell_row(&cell)).await?;
                    Event::CellRegistered(cell.clone())
                }
            };
            Ok((cell, vec![event]))
        })
        .await
    }

    /// Heartbeat, drain or mark missing.
    pub async fn change_cell(&self, id: &str, event: CellEvent) -> Result<Cell> {
        // An event applies to whatever the cell is now: when another writer (a heartbeat
        // beside a drain) changed it between the read and the write, read it again.
        let mut tries = 0;
        loop {
            match self.change_cell_once(id, &event).await {
                Err(Error::Stale { .. }) if tries < 16 => tries += 1,
                done => return done,
            }
        }
    }

    async fn change_cell_once(&self, id: &str, event: &CellEvent) -> Result<Cell> {
        self.write(async |tx| {
            let before = match store::get::<CellRow>(tx, id).await? {
                Some(row) => rows::cell(&row)?,
                None => return Err(Error::NotFound { what: format!("cell {id}") }),
            };
            let after = before.apply(*event, self.clock.now())?;
            if !store::update_versioned(tx, &rows::cell_row(&after), before.version).await? {
                return Err(stale(format!("cell {id}"), before.version));
            }
            Ok((after.clone(), vec![Event::CellChanged { before, after }]))
        })
        .await
    }

    /// Forgets a cell; answers whether it was known.
    pub async fn remove_cell(&self, id: &str) -> Result<bool> {
        self.write(async |tx| {
            let Some(row) = store::get::<CellRow>(tx, id).await? else { return Ok((false, vec![])) };
            let before = rows::cell(&row)?;
            if !store::delete_versioned::<CellRow>(tx, id, before.version).await? {
                return Err(stale(format!("cell {id}"), before.version));
            }
            Ok((true, vec![Event::CellRemoved(before)]))
        })
        .await
    }

    pub async fn cells(&self) -> Result<Vec<Cell>> {
        let mut conn = self.store.conn().await?;
        store::find_all::<CellRow>(&mut conn, vec![]).await?.iter().map(rows::cell).collect()
    }

    // ---- tasks ----

    /// Creates a PENDING task.
    pub async fn create_task(&self, guid: &str, definition: TaskDefinition) -> Result<Task> {
        let task = Task::pending(guid, definition, self.clock.now())?;
        self.write(async |tx| {
            store::insert(tx, &rows::task_row(&task)).await.map_err(conflict_as(format!("task {guid}")))?;
            Ok((task.clone(), vec![Event::TaskCreated(task)]))
        })
        .await
    }

    /// Applies one event to a task (start, complete, fail, cancel, resolving, resolve, demote).
    /// Answers the task afterwards (`None` once resolved).
    pub async fn change_task(&self, guid: &str, event: &TaskEvent) -> Result<Option<Task>> {
        self.write(async |tx| {
            let before = match store::get::<TaskRow>(tx, guid).await? {
                Some(row) => rows::task(&row)?,
                None => return Err(Error::NotFound { what: format!("task {guid}") }),
            };
            let (event, answer) = match before.apply(event, self.clock.now())? {
                TaskNext::Becomes(after) if after == before => return Ok((Some(after), vec![])),
                TaskNext::Becomes(after) => {
                    if !store::update_versioned(tx, &rows::task_row(&after), before.version).await? {
                        return Err(stale(format!("task {guid}"), before.version));
                    }
                    (Event::TaskChanged { before, after: after.clone() }, Some(after))
                }
                TaskNext::Removed => {
                    if !store::delete_versioned::<TaskRow>(tx, guid, before.version).await? {
                        return Err(stale(format!("task {guid}"), before.version));
                    }
                    (Event::TaskRemoved(before), None)
                }
            };
            Ok((answer, vec![event]))
        })
        .await
    }

    pub async fn task(&self, guid: &str) -> Result<Option<Task>> {
        let mut conn = self.store.conn().await?;
        store::get::<TaskRow>(&mut conn, guid).await?.as_ref().map(rows::task).transpose()
    }

    pub async fn tasks(&self) -> Result<Vec<Task>> {
        let mut conn = self.store.conn().await?;
        store::find_all::<TaskRow>(&mut conn, vec![]).await?.iter().map(rows::task).collect()
    }

    /// Everything convergence looks at.
    pub async fn state(&self) -> Result<State> {
        Ok(State {
            desired: self.desired_lrps().await?,
            actual: self.actual_lrps(None).await?,
            tasks: self.tasks().await?,
            cells: self.cells().await?,
        })
    }
}
