//! One-off workloads (Diego's Task): PENDING → RUNNING → COMPLETED → RESOLVING → gone, with
//! cancel and failure, in one transition table.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::RootFs;
use crate::staging::TaskKind;
use crate::{Error, Result, Time};

/// Diego's task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TaskState {
    Pending,
    Running,
    Completed,
    Resolving,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Running => "RUNNING",
            TaskState::Completed => "COMPLETED",
            TaskState::Resolving => "RESOLVING",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        match s {
            "PENDING" => Some(TaskState::Pending),
            "RUNNING" => Some(TaskState::Running),
            "COMPLETED" => Some(TaskState::Completed),
            "RESOLVING" => Some(TaskState::Resolving),
            _ => None,
        }
    }
}

/// What a task runs and needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskDefinition {
    pub app_guid: String,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub max_pids: u32,
    pub rootfs: RootFs,
    pub droplet: Option<String>,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub log_source_id: String,
    /// The source type of its output lines in the app's logs (CF: `APP/TASK/<name>`).
    #[serde(default)]
    pub log_source: String,
    /// Tags on its log lines (app, space and org ids and names).
    #[serde(default)]
    pub metric_tags: BTreeMap<String, String>,
    pub placement_tags: BTreeSet<String>,
    /// Called (POST) with the result once the task completes.
    pub completion_callback_url: Option<String>,
    /// A command (`cf run-task`) or a staging; tasks stored before kinds existed are commands.
    #[serde(default)]
    pub kind: TaskKind,
}

/// A task and where it is in its life.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub guid: String,
    pub definition: TaskDefinition,
    pub state: TaskState,
    pub cell_id: Option<String>,
    pub failed: bool,
    pub failure_reason: Option<String>,
    pub result: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Time,
    /// When it entered its current state.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Time,
    pub version: i64,
}

/// Something that happens to a task.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskEvent {
    /// A cell starts it.
    Start { cell_id: String },
    /// Its process exited (or failed to run) on the cell.
    Complete { cell_id: String, failed: bool, failure_reason: Option<String>, result: Option<String> },
    /// The scheduler gives up on it (no cell, cell missing, never started in time).
    Fail { reason: String },
    /// The user cancelled it.
    Cancel,
    /// Its completion callback is being delivered.
    Resolving,
    /// The callback is delivered (or there is none): the task goes away.
    Resolve,
    /// A callback that took too long is to be tried again.
    Demote,
}

impl TaskEvent {
    fn name(&self) -> &'static str {
        match self {
            TaskEvent::Start { .. } => "start",
            TaskEvent::Complete { .. } => "complete",
            TaskEvent::Fail { .. } => "fail",
            TaskEvent::Cancel => "cancel",
            TaskEvent::Resolving => "resolve (begin)",
            TaskEvent::Resolve => "resolve",
            TaskEvent::Demote => "demote",
        }
    }
}

/// What a task becomes.
// Returned and consumed at once, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskNext {
    Becomes(Task),
    Removed,
}

impl Task {
    /// A new task waiting for a cell.
    pub fn pending(guid: &str, definition: TaskDefinition, now: Time) -> Result<Task> {
        let bad = |why: &str| Err(Error::Invalid { what: format!("task '{guid}'"), why: why.into() });
        if guid.is_empty() {
            return bad("guid must not be empty");
        }
        match &definition.kind {
            TaskKind::Command if definition.command.is_empty() => return bad("command must not be empty"),
            TaskKind::Command => {}
            TaskKind::Staging(spec) => {
                if let Some(problem) = spec.problem() {
                    return bad(problem);
                }
            }
        }
        if definition.memory_mb == 0 || definition.disk_mb == 0 {
            return bad("memory_mb and disk_mb must be positive");
        }
        if let Some(url) = &definition.completion_callback_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad("completion_callback_url must be an http(s) URL");
        }
        Ok(Task {
            guid: guid.into(),
            definition,
            state: TaskState::Pending,
            cell_id: None,
            failed: false,
            failure_reason: None,
            result: None,
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    fn illegal(&self, event: &TaskEvent) -> Error {
        Error::TaskTransition { guid: self.guid.clone(), state: self.state.as_str(), event: event.name() }
    }

    fn moved(&self, state: TaskState, now: Time) -> Task {
        Task { state, updated_at: now, version: self.version + 1, ..self.clone() }
    }

    fn failed_with(&self, reason: &str, now: Time) -> Task {
        Task { failed: true, failure_reason: Some(reason.into()), ..self.moved(TaskState::Completed, now) }
    }

    /// The one transition table. Illegal events are typed errors and change nothing.
    pub fn apply(&self, event: &TaskEvent, now: Time) -> Result<TaskNext> {
        use TaskEvent as E;
        use TaskState as S;
        let on_its_cell = |cell: &str| {
            if self.cell_id.as_deref() == Some(cell) { Ok(()) } else { Err(self.illegal(event)) }
        };
        let next = match (self.state, event) {
            (S::Pending, E::Start { cell_id }) => {
                Task { cell_id: Some(cell_id.clone()), ..self.moved(S::Running, now) }
            }
            (S::Running, E::Start { cell_id }) => {
                on_its_cell(cell_id)?;
                self.clone()
            }
            (S::Running, E::Complete { cell_id, failed, failure_reason, result }) => {
                on_its_cell(cell_id)?;
                Task {
                    failed: *failed,
                    failure_reason: failure_reason.clone(),
                    result: result.clone(),
                    ..self.moved(S::Completed, now)
                }
            }
            (S::Pending | S::Running, E::Fail { reason }) => self.failed_with(reason, now),
            (S::Pending | S::Running, E::Cancel) => self.failed_with("task was cancelled", now),
            (S::Completed, E::Resolving) => self.moved(S::Resolving, now),
            (S::Completed | S::Resolving, E::Resolve) => return Ok(TaskNext::Removed),
            (S::Resolving, E::Demote) => self.moved(S::Completed, now),
            (S::Pending, E::Complete { .. } | E::Resolving | E::Resolve | E::Demote)
            | (S::Running, E::Resolving | E::Resolve | E::Demote)
            | (S::Completed, E::Start { .. } | E::Complete { .. } | E::Fail { .. } | E::Cancel | E::Demote)
            | (S::Resolving, E::Start { .. } | E::Complete { .. } | E::Fail { .. } | E::Cancel | E::Resolving) => {
                return Err(self.illegal(event));
            }
        };
        Ok(TaskNext::Becomes(next))
    }
}

#[cfg(test)]
pub(crate) fn sample_definition(memory_mb: u64) -> TaskDefinition {
    TaskDefinition {
        app_guid: "app".into(),
        memory_mb,
        disk_mb: 512,
        max_pids: 256,
        rootfs: RootFs::Stack("cflinuxfs4".into()),
        droplet: Some("droplet".into()),
        command: "rake db:migrate".into(),
        env: BTreeMap::new(),
        log_source_id: "app".into(),
        log_source: "APP/TASK/migrate".into(),
        metric_tags: BTreeMap::new(),
        placement_tags: BTreeSet::new(),
        completion_callback_url: None,
        kind: TaskKind::Command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Time {
        time::macros::datetime!(2026-01-01 00:00 UTC)
    }

    fn becomes(task: &Task, ev: TaskEvent) -> Task {
        match task.apply(&ev, t0()).unwrap() {
            TaskNext::Becomes(t) => t,
            TaskNext::Removed => panic!("{ev:?} removed the task"),
        }
    }

    #[test]
    fn a_task_runs_completes_resolves_and_goes() {
        let task = Task::pending("t1", sample_definition(128), t0()).unwrap();
        let running = becomes(&task, TaskEvent::Start { cell_id: "c1".into() });
        assert_eq!((running.state, running.cell_id.as_deref(), running.version), (TaskState::Running, Some("c1"), 1));
        let done = TaskEvent::Complete {
            cell_id: "c1".into(),
            failed: false,
            failure_reason: None,
            result: Some("ok".into()),
        };
        let completed = becomes(&running, done);
        assert_eq!(
            (completed.state, completed.failed, completed.result.as_deref()),
            (TaskState::Completed, false, Some("ok"))
        );
        let resolving = becomes(&completed, TaskEvent::Resolving);
        assert_eq!(becomes(&resolving, TaskEvent::Demote).state, TaskState::Completed);
        assert_eq!(resolving.apply(&TaskEvent::Resolve, t0()).unwrap(), TaskNext::Removed);
    }

    #[test]
    fn cancel_fails_the_task_and_is_refused_once_completed() {
        let task = Task::pending("t1", sample_definition(128), t0()).unwrap();
        let cancelled = becomes(&task, TaskEvent::Cancel);
        assert_eq!((cancelled.state, cancelled.failed), (TaskState::Completed, true));
        assert_eq!(cancelled.failure_reason.as_deref(), Some("task was cancelled"));
        let err = cancelled.apply(&TaskEvent::Cancel, t0()).unwrap_err();
        assert_eq!(err.to_string(), "task t1: cannot cancel while COMPLETED");
    }

    #[test]
    fn only_the_cell_running_it_may_complete_it_and_bad_tasks_are_refused() {
        let running = becomes(
            &Task::pending("t1", sample_definition(128), t0()).unwrap(),
            TaskEvent::Start { cell_id: "c1".into() },
        );
        let other = TaskEvent::Complete { cell_id: "c2".into(), failed: false, failure_reason: None, result: None };
        assert!(running.apply(&other, t0()).is_err());
        assert!(Task::pending("", sample_definition(128), t0()).is_err());
        assert!(Task::pending("t2", sample_definition(0), t0()).is_err());
        let mut def = sample_definition(128);
        def.completion_callback_url = Some("ftp://x".into());
        assert!(Task::pending("t3", def, t0()).unwrap_err().to_string().contains("completion_callback_url"));
    }
}
