//! A Cloud Controller task's state follows the scheduler's task of the same guid: RUNNING
//! once a cell starts it, SUCCEEDED or FAILED (with the failure reason) once it completes.
//! Two ways keep them in step: [`follow_tasks`] applies every scheduler event as it comes
//! (and removes the completed scheduler task once the result is recorded, as CC's
//! completion callback does in CF), and [`refresh`] reads the scheduler's task whenever a
//! task still in flight is read through the API (a missed event, a restart). A task the
//! scheduler no longer has while it is still in flight is FAILED ("task was lost").

use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{Event, Task, TaskEvent, TaskState};
use hearth_store::{self as store, CcTask, Cond, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::error::ApiResult;

/// CF's task states.
pub const PENDING: &str = "PENDING";
pub const RUNNING: &str = "RUNNING";
pub const CANCELING: &str = "CANCELING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";

/// Why a task the scheduler lost is FAILED.
const LOST: &str = "task was lost";

/// Whether a CF task state is final.
pub fn is_final(state: &str) -> bool {
    state == SUCCEEDED || state == FAILED
}

/// The CF state (and failure reason) a task in `current` state should have given the
/// scheduler's task (`None`: the scheduler has none). Pure: `None` means no change.
pub fn next_state(current: &str, sched: Option<&Task>) -> Option<(&'static str, Option<String>)> {
    if is_final(current) {
        return None;
    }
    let next = match sched {
        None => (FAILED, Some(LOST.to_string())),
        Some(t) => match t.state {
            TaskState::Pending => return None,
            TaskState::Running if current == CANCELING || current == RUNNING => return None,
            TaskState::Running => (RUNNING, None),
            TaskState::Completed | TaskState::Resolving if t.failed => {
                (FAILED, Some(t.failure_reason.clone().unwrap_or_else(|| "task failed".into())))
            }
            TaskState::Completed | TaskState::Resolving => (SUCCEEDED, None),
        },
    };
    Some(next)
}

/// Applies the scheduler's view of task `guid` to its CC row; once the row is final the
/// scheduler's copy is removed. Answers the row as it is afterwards (`None`: no CC task).
pub async fn sync_one(
    store: &Store,
    sched: &SchedulerStore,
    guid: &str,
    seen: Option<&Task>,
) -> ApiResult<Option<CcTask>> {
    let mut tx = store.begin().await?;
    let Some(mut row) = store::get::<CcTask>(&mut tx, guid).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let Some((state, reason)) = next_state(&row.state, seen) else {
        tx.rollback().await?;
        return Ok(Some(row));
    };
    row.state = state.to_string();
    row.failure_reason = reason;
    row.updated_at = store::now();
    store::update(&mut tx, &row).await?;
    tx.commit().await?;
    if is_final(state) && seen.is_some() {
        match sched.change_task(guid, &TaskEvent::Resolve).await {
            Ok(_) | Err(hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::Stale { .. }) => {}
            Err(e) => tracing::warn!(task = %guid, error = %e, "could not remove a completed task"),
        }
    }
    Ok(Some(row))
}

/// Brings `rows` still in flight up to date with the scheduler (on every read).
pub async fn refresh(store: &Store, sched: &SchedulerStore, rows: &mut [CcTask]) -> ApiResult<()> {
    for row in rows.iter_mut().filter(|r| !is_final(&r.state)) {
        let seen = sched.task(&row.guid).await.map_err(|e| crate::ApiError::Internal(format!("scheduler: {e}")))?;
        if let Some(now) = sync_one(store, sched, &row.guid, seen.as_ref()).await? {
            *row = now;
        }
    }
    Ok(())
}

/// Every CC task still in flight, brought up to date (at start and after missed events).
async fn refresh_all(store: &Store, sched: &SchedulerStore) -> ApiResult<()> {
    let mut conn = store.conn().await?;
    let in_flight = vec![PENDING.to_string(), RUNNING.to_string(), CANCELING.to_string()];
    let mut rows: Vec<CcTask> = store::find_all(&mut conn, vec![Cond::In("state", in_flight)]).await?;
    drop(conn);
    refresh(store, sched, &mut rows).await
}

/// Follows the scheduler's task events into the CC tasks until `shutdown` fires.
pub async fn follow_tasks(store: Store, sched: SchedulerStore, shutdown: CancellationToken) {
    let mut events = sched.subscribe();
    if let Err(e) = refresh_all(&store, &sched).await {
        tracing::warn!(error = %e, "could not bring tasks up to date");
    }
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let outcome = match event {
            Ok(Event::TaskChanged { after, .. }) => {
                sync_one(&store, &sched, &after.guid, Some(&after)).await.map(|_| ())
            }
            Ok(_) => Ok(()),
            Err(RecvError::Lagged(_)) => refresh_all(&store, &sched).await,
            Err(RecvError::Closed) => return,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "could not record a task's state");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use hearth_scheduler::{RootFs, TaskDefinition};

    use super::*;

    fn task(state: TaskState, failed: Option<&str>) -> Task {
        let definition = TaskDefinition {
            app_guid: "app".into(),
            memory_mb: 64,
            disk_mb: 64,
            max_pids: 64,
            rootfs: RootFs::Stack("cflinuxfs4".into()),
            droplet: None,
            command: "true".into(),
            env: BTreeMap::new(),
            log_source_id: "app".into(),
            log_source: "APP/TASK/t".into(),
            metric_tags: BTreeMap::new(),
            placement_tags: BTreeSet::new(),
            completion_callback_url: None,
            kind: hearth_scheduler::TaskKind::Command,
        };
        let mut t = Task::pending("t", definition, hearth_scheduler::Time::UNIX_EPOCH).unwrap();
        t.state = state;
        t.failed = failed.is_some();
        t.failure_reason = failed.map(str::to_string);
        t
    }

    #[test]
    fn a_cf_task_follows_the_scheduler_and_never_leaves_a_final_state() {
        assert_eq!(next_state(PENDING, Some(&task(TaskState::Pending, None))), None);
        assert_eq!(next_state(PENDING, Some(&task(TaskState::Running, None))), Some((RUNNING, None)));
        assert_eq!(next_state(CANCELING, Some(&task(TaskState::Running, None))), None);
        assert_eq!(next_state(RUNNING, Some(&task(TaskState::Completed, None))), Some((SUCCEEDED, None)));
        let failed = task(TaskState::Completed, Some("APP/TASK/t: Exited with status 3"));
        assert_eq!(
            next_state(CANCELING, Some(&failed)),
            Some((FAILED, Some("APP/TASK/t: Exited with status 3".into())))
        );
        assert_eq!(next_state(RUNNING, None), Some((FAILED, Some("task was lost".into()))));
        for done in [SUCCEEDED, FAILED] {
            assert_eq!(next_state(done, None), None);
            assert_eq!(next_state(done, Some(&task(TaskState::Running, None))), None);
        }
    }
}
