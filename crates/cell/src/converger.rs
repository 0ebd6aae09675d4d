//! The scheduler's loop (Diego's converger and auctioneer at work): read the state,
//! converge, apply the actions, auction what must start and hand each placement to its
//! cell, tell cells what to stop. It runs on a timer and right after every change in the
//! store, so a crash or a scale-up is acted on at once, and a missed event is caught by
//! the next tick. A new task is auctioned at once and handed to its cell, which runs it; a
//! task that stops running without its cell's report (cancelled) is stopped on its cell.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_scheduler::persist::{FollowUp, SchedulerStore};
use hearth_scheduler::placement::Work;
use hearth_scheduler::{
    Action, ActualLrpKey, ActualState, Clock, Config, Event, PlacementError, Snapshot, SystemClock, TaskState, converge,
};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::link::{CellHandle, Command};

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub actions: usize,
    pub placed: usize,
    pub refused: usize,
    pub stopped: usize,
    /// Actions skipped because what they acted on changed since the round's snapshot (the
    /// loop runs another round soon).
    pub skipped: usize,
    /// Instances moved to make room for one too big for any cell's free memory.
    pub moved: usize,
}

/// The loop, with the cells it can reach.
#[derive(Clone)]
pub struct Converger {
    sched: SchedulerStore,
    config: Config,
    cells: Arc<Mutex<HashMap<String, Arc<dyn CellHandle>>>>,
    /// One round at a time.
    round_lock: Arc<tokio::sync::Mutex<()>>,
    /// Instances handed to a cell and not yet claimed, with their version then: not
    /// auctioned again until they change (or the cell had long enough to claim them).
    handed: Arc<Mutex<HashMap<ActualLrpKey, Handed>>>,
    /// Instances too big for any cell's free memory that others are moving to make room
    /// for: since when, and the instances moved. Offered again once those moves are done.
    boulders: Arc<Mutex<HashMap<ActualLrpKey, Moving>>>,
}

/// An instance handed to a cell: its version then, when, and the cell's id.
type Handed = (i64, Instant, String);

/// A boulder's moves: since when, and the instances moved.
type Moving = (Instant, Vec<ActualLrpKey>);

/// How long a cell has to claim what it was handed before it is auctioned again.
const CLAIM_WITHIN: Duration = Duration::from_secs(10);

/// How long moves for a boulder may take before another plan is tried.
const MOVES_WITHIN: Duration = Duration::from_secs(180);

impl Converger {
    pub fn new(sched: SchedulerStore, config: Config) -> Converger {
        Converger {
            sched,
            config,
            cells: Arc::default(),
            round_lock: Arc::default(),
            handed: Arc::default(),
            boulders: Arc::default(),
        }
    }

    /// Makes a cell reachable for placements and stops (replacing one of the same id).
    pub fn add_cell(&self, cell: impl CellHandle) {
        self.add_handle(Arc::new(cell));
    }

    /// `add_cell` for a handle already shared.
    pub fn add_handle(&self, cell: Arc<dyn CellHandle>) {
        self.cells.lock().expect("not poisoned").insert(cell.id().to_string(), cell);
    }

    /// Forgets how to reach a cell (it disconnected), unless `only` is given and the
    /// handle now registered is another one (it reconnected since).
    pub fn remove_cell(&self, id: &str, only: Option<&Arc<dyn CellHandle>>) {
        let mut cells = self.cells.lock().expect("not poisoned");
        if only.is_none_or(|h| cells.get(id).is_some_and(|now| Arc::ptr_eq(now, h))) {
            cells.remove(id);
        }
    }

    fn cell(&self, id: &str) -> Option<Arc<dyn CellHandle>> {
        self.cells.lock().expect("not poisoned").get(id).cloned()
    }

    /// One round: converge, apply, auction, hand out.
    pub async fn round(&self) -> anyhow::Result<RoundReport> {
        self.round_with(Vec::new()).await
    }

    /// A round that also auctions `fresh` instances (just made UNCLAIMED: created, or
    /// restarted at once after a crash), which convergence itself re-offers only later.
    pub async fn round_with(&self, fresh: Vec<ActualLrpKey>) -> anyhow::Result<RoundReport> {
        self.round_with_tasks(fresh, Vec::new()).await
    }

    /// `round_with`, also auctioning `fresh_tasks` (just created, still PENDING), which
    /// convergence itself re-offers only after a while.
    pub async fn round_with_tasks(
        &self,
        fresh: Vec<ActualLrpKey>,
        fresh_tasks: Vec<String>,
    ) -> anyhow::Result<RoundReport> {
        self.round_inner(fresh, fresh_tasks, false).await
    }

    /// `catch_up`: every UNCLAIMED instance and PENDING task is offered as if each had just
    /// been created (convergence alone re-offers them only once `stale_unclaimed_after`).
    async fn round_inner(
        &self,
        mut fresh: Vec<ActualLrpKey>,
        mut fresh_tasks: Vec<String>,
        catch_up: bool,
    ) -> anyhow::Result<RoundReport> {
        let _one = self.round_lock.lock().await;
        let state = self.sched.state().await?;
        if catch_up {
            fresh.extend(state.actual.iter().filter(|a| a.state == ActualState::Unclaimed).map(|a| a.key.clone()));
            fresh_tasks.extend(state.tasks.iter().filter(|t| t.state == TaskState::Pending).map(|t| t.guid.clone()));
        }
        // An event may be older than this snapshot: only what is still UNCLAIMED is placed
        // (a cell may have claimed it since, and would be handed it a second time).
        {
            // A boulder is offered again once the instances moved for it have left (their
            // evacuating copies are gone); moves that take too long give way to a new plan.
            let mut boulders = self.boulders.lock().expect("not poisoned");
            let leaving = |moved: &ActualLrpKey| {
                state.actual.iter().any(|a| {
                    a.key.process_guid == moved.process_guid
                        && a.key.index == moved.index
                        && a.key.presence == hearth_scheduler::Presence::Evacuating
                })
            };
            boulders.retain(|key, (since, moved)| {
                let waiting = state.actual.iter().any(|a| a.key == *key && a.state == ActualState::Unclaimed);
                if !waiting || since.elapsed() >= MOVES_WITHIN {
                    return false;
                }
                if moved.iter().any(leaving) {
                    return true;
                }
                fresh.push(key.clone());
                false
            });
        }
        fresh.retain(|key| state.actual.iter().any(|a| a.key == *key && a.state == ActualState::Unclaimed));
        let snapshot =
            Snapshot { desired: &state.desired, actual: &state.actual, tasks: &state.tasks, cells: &state.cells };
        let actions = converge(snapshot, SystemClock.now(), &self.config);
        let mut report = RoundReport { actions: actions.len(), ..RoundReport::default() };
        let mut to_place: Vec<ActualLrpKey> = fresh;
        let mut tasks: Vec<String> = fresh_tasks
            .into_iter()
            .filter(|guid| state.tasks.iter().any(|t| t.guid == *guid && t.state == TaskState::Pending))
            .collect();
        for action in &actions {
            let follow_up = match self.sched.apply(action).await {
                Ok(f) => f,
                // What the snapshot saw is gone or changed already (a cell acted since): the
                // rest of the round still goes ahead, and the loop runs another soon.
                Err(hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::Stale { .. }) => {
                    report.skipped += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match follow_up {
                FollowUp::Nothing | FollowUp::DeliverCallback(_) => {}
                FollowUp::PlaceInstance(key) => to_place.push(key),
                FollowUp::PlaceTask(guid) if !tasks.contains(&guid) => tasks.push(guid),
                FollowUp::PlaceTask(_) => {}
                FollowUp::StopOnCell { cell_id, key } => {
                    report.stopped += 1;
                    match self.cell(&cell_id) {
                        Some(cell) => cell.send(Command::Stop { key }),
                        None => match self.sched.remove_actual(&key).await {
                            Ok(()) | Err(hearth_scheduler::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        },
                    }
                }
            }
        }
        {
            // What was handed out and is unchanged since waits for its cell's claim.
            let current: HashMap<&ActualLrpKey, (ActualState, i64)> =
                state.actual.iter().map(|a| (&a.key, (a.state, a.version))).collect();
            let mut handed = self.handed.lock().expect("not poisoned");
            handed.retain(|key, (version, when, _)| {
                when.elapsed() < CLAIM_WITHIN
                    && current.get(key).is_none_or(|(s, v)| *s == ActualState::Unclaimed && v == version)
            });
            let mut seen = std::collections::HashSet::new();
            to_place.retain(|key| !handed.contains_key(key) && seen.insert(key.clone()));
        }
        if to_place.is_empty() && tasks.is_empty() {
            return Ok(report);
        }
        let in_flight: Vec<(String, ActualLrpKey)> = self
            .handed
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(key, (_, _, cell))| (cell.clone(), key.clone()))
            .collect();
        let result = self.sched.auction_with(&to_place, &tasks, &in_flight).await?;
        report.refused = result.failed.len();
        let boulder = result.failed.iter().find_map(|(start, error)| match (&start.work, error) {
            (Work::Lrp { process_guid, index }, PlacementError::InsufficientResources { .. }) => {
                Some(ActualLrpKey::ordinary(process_guid, *index))
            }
            _ => None,
        });
        for (start, cell_id) in result.placed {
            let Some(rep) = self.cell(&cell_id) else { continue };
            let (process_guid, index) = match start.work {
                Work::Lrp { process_guid, index } => (process_guid, index),
                Work::Task { guid } => {
                    report.placed += 1;
                    rep.send(Command::RunTask { guid });
                    continue;
                }
            };
            let key = ActualLrpKey::ordinary(&process_guid, index);
            let version = self.sched.actual_lrp(&key).await?.map(|a| a.version).unwrap_or_default();
            self.handed.lock().expect("not poisoned").insert(key.clone(), (version, Instant::now(), cell_id.clone()));
            report.placed += 1;
            rep.send(Command::Perform { key });
        }
        // One boulder at a time: while its moves run, nothing else is moved.
        if let Some(boulder) = boulder
            && self.boulders.lock().expect("not poisoned").is_empty()
        {
            report.moved = self.make_room(&boulder, &in_flight).await?;
        }
        Ok(report)
    }

    /// Moves smaller instances so that `boulder` fits on one cell; each move starts the
    /// instance on its new cell first (the running copy stays as the evacuating one and is
    /// stopped once the new one runs), so nothing is ever down. Answers how many moved.
    async fn make_room(&self, boulder: &ActualLrpKey, in_flight: &[(String, ActualLrpKey)]) -> anyhow::Result<usize> {
        let Some(plan) = self.sched.plan_room(boulder, in_flight).await? else { return Ok(0) };
        if plan.moves.iter().any(|m| self.cell(&m.to).is_none()) {
            return Ok(0);
        }
        tracing::info!(%boulder, target = %plan.target, moves = plan.moves.len(), "moving instances to make room");
        let mut moved = Vec::new();
        for m in plan.moves {
            let evacuate = Action::Evacuate { key: m.key.clone(), cell_id: m.from.clone() };
            let FollowUp::PlaceInstance(key) = self.sched.apply(&evacuate).await? else { continue };
            let Some(cell) = self.cell(&m.to) else { continue };
            let version = self.sched.actual_lrp(&key).await?.map(|a| a.version).unwrap_or_default();
            self.handed.lock().expect("not poisoned").insert(key.clone(), (version, Instant::now(), m.to.clone()));
            cell.send(Command::Perform { key: key.clone() });
            moved.push(key);
        }
        let count = moved.len();
        if count > 0 {
            self.boulders.lock().expect("not poisoned").insert(boulder.clone(), (Instant::now(), moved));
        }
        Ok(count)
    }

    /// Rounds on every change and at least every `convergence_interval`, until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut events = self.sched.subscribe();
        let mut tick = tokio::time::interval(self.config.convergence_interval);
        // After a round that failed or skipped actions, another one soon (not at the next
        // event or tick: everything may have settled, and a skipped stop would wait).
        let mut again = false;
        // What was created before this loop subscribed, or while it lagged, has no event
        // left to announce it: the first round, and the one after a lag, offer everything
        // still waiting.
        let mut catch_up = true;
        loop {
            let mut fresh = Vec::new();
            let mut fresh_tasks = Vec::new();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)), if again => {}
                event = events.recv() => {
                    match event {
                        Err(RecvError::Closed) => return,
                        Err(RecvError::Lagged(_)) => catch_up = true,
                        Ok(event) => {
                            fresh.extend(unclaimed(&event));
                            fresh_tasks.extend(created_task(&event));
                            self.tell_cells(&event);
                        }
                    }
                    // Let a burst of changes settle into one round.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    loop {
                        match events.try_recv() {
                            Ok(event) => {
                                fresh.extend(unclaimed(&event));
                                fresh_tasks.extend(created_task(&event));
                                self.tell_cells(&event);
                            }
                            Err(TryRecvError::Lagged(_)) => catch_up = true,
                            Err(_) => break,
                        }
                    }
                }
            }
            let round = self.round_inner(fresh, fresh_tasks, catch_up).await;
            again = match round {
                Ok(report) => {
                    catch_up = false;
                    report.skipped > 0
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a convergence round failed");
                    true
                }
            };
        }
    }
}

impl Converger {
    /// A cell stops the container of an instance that was removed or taken from it.
    fn tell_cells(&self, event: &Event) {
        // A task that stopped running without its cell's report (cancelled, failed by the
        // scheduler): its cell stops the container (its own completion makes this a no-op).
        if let Event::TaskChanged { before, after } = event
            && before.state == TaskState::Running
            && after.state != TaskState::Running
            && let Some(rep) = before.cell_id.as_deref().and_then(|c| self.cell(c))
        {
            rep.send(Command::CancelTask { guid: before.guid.clone() });
        }
        let gone = match event {
            Event::ActualRemoved(before) => before.instance.clone(),
            Event::ActualChanged { before, after }
                if before.instance.is_some() && after.instance != before.instance =>
            {
                // A crash is the cell's own report: it has already removed the container.
                (after.crash_count == before.crash_count).then(|| before.instance.clone()).flatten()
            }
            _ => None,
        };
        if let Some(instance) = gone
            && let Some(rep) = self.cell(&instance.cell_id)
        {
            rep.send(Command::Forget { instance_guid: instance.instance_guid });
        }
    }
}

/// The task an event created, if any (it is PENDING: auction it at once).
fn created_task(event: &Event) -> Option<String> {
    match event {
        Event::TaskCreated(task) => Some(task.guid.clone()),
        _ => None,
    }
}

/// The instance an event left UNCLAIMED, if any.
fn unclaimed(event: &Event) -> Option<ActualLrpKey> {
    match event {
        Event::ActualChanged { after, .. } | Event::ActualCreated(after) if after.state == ActualState::Unclaimed => {
            Some(after.key.clone())
        }
        _ => None,
    }
}
