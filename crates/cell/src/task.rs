//! One-off tasks on the cell (Diego's executor running a Task): the auction places a PENDING
//! task here, the rep starts it (the store says RUNNING on this cell), runs its command in a
//! `task-` container made like an instance's (stack or image, droplet layer, environment,
//! limits, a network with the default security groups; no ports, no health check), sends
//! its output to the app's logs as `APP/TASK/<name>`, and on exit records it COMPLETED —
//! failed with `APP/TASK/<name>: Exited with status N` when the status is not 0 — and
//! removes the container. A cancelled task (the store completed it already) gets SIGTERM,
//! SIGKILL after the grace period, and its container goes. After a restart the cell
//! watches its running tasks' containers again (their exit status is on disk), fails the
//! ones whose container is gone, and destroys `task-` containers no task owns.
//!
//! The task's watcher is the only one that removes its container, so a cancel and an exit
//! at once never remove it twice.

use std::collections::BTreeSet;

use hearth_containers::{ContainerId, ContainerInfo, ExitStatus, Status};
use hearth_images::Digest;
use hearth_logs::{LineSource, LogStream};
use hearth_scheduler::{RootFs, StagingSpec, Task, TaskEvent, TaskKind, TaskState};
use tokio_util::sync::CancellationToken;

use crate::node::ContainerRequest;
use crate::rep::Rep;

/// Task containers' ids start with this (the cell owns them, as it owns `lrp-` ones).
pub const TASK_PREFIX: &str = "task-";

/// How long a finished task's output may take to reach the logs before its container goes.
const OUTPUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The container id of a task.
pub fn container_id(task_guid: &str) -> Result<ContainerId, String> {
    ContainerId::new(format!("{TASK_PREFIX}{task_guid}")).map_err(|e| e.to_string())
}

/// How the container of `task` is made: its command under `sh -c`, as an instance's.
/// Pure.
pub fn plan(task: &Task, disk_limits: bool) -> Result<ContainerRequest, String> {
    let d = &task.definition;
    let mut request =
        ContainerRequest::new(container_id(&task.guid)?, vec!["/bin/sh".into(), "-c".into(), d.command.clone()]);
    request.image = match &d.rootfs {
        RootFs::Image(reference) => Some(reference.clone()),
        RootFs::Stack(_) => None,
    };
    if let Some(droplet) = &d.droplet {
        request.layers.push(Digest::parse(droplet).map_err(|e| format!("droplet {droplet}: {e}"))?);
    }
    let mut env: Vec<String> = d.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("CF_INSTANCE_GUID={}", task.guid));
    env.push(format!("INSTANCE_GUID={}", task.guid));
    if matches!(d.rootfs, RootFs::Stack(_)) {
        env.push("HOME=/home/vcap".into());
        env.push("LANG=en_US.UTF-8".into());
        env.push("TMPDIR=/home/vcap/tmp".into());
        request.cwd = Some("/home/vcap".into());
    }
    request.env = env;
    request.network = true;
    request.memory_bytes = Some(d.memory_mb.saturating_mul(1 << 20));
    request.pids = (d.max_pids > 0).then_some(i64::from(d.max_pids));
    request.disk_limit = disk_limits.then(|| d.disk_mb.saturating_mul(1 << 20));
    Ok(request)
}

/// Why a task failed, as CF says it (`APP/TASK/<name>: Exited with status N`); `None`: it
/// succeeded.
pub fn failure(log_source: &str, exit: &Result<ExitStatus, hearth_containers::Error>) -> Option<String> {
    match exit {
        Ok(ExitStatus::Code(0)) => None,
        Ok(ExitStatus::Code(code)) => Some(format!("{log_source}: Exited with status {code}")),
        Ok(ExitStatus::Signal(9)) => Some(format!("{log_source}: Exited with status 137 (out of memory or killed)")),
        Ok(ExitStatus::Signal(signal)) => Some(format!("{log_source}: Exited with signal {signal}")),
        Err(e) => Some(format!("{log_source}: lost track of the process: {e}")),
    }
}

/// How a task's watch ended.
enum Ending {
    /// It ran to its end (`Some`: failed, why).
    Exited(Option<String>),
    /// The store no longer has it running here (cancelled, or failed by the scheduler).
    Cancelled,
}

impl Rep {
    /// Takes a task the auction placed here: starts it in the store and runs it in the background.
    pub fn run_task(&self, guid: String) {
        let rep = self.clone();
        tokio::spawn(async move {
            if let Err(e) = rep.start_task(&guid).await {
                tracing::warn!(task = %guid, error = %e, "could not run a placed task");
            }
        });
    }

    /// Stops a task the store no longer has running on this cell (cancelled, failed): its
    /// watcher sends SIGTERM, SIGKILL after the grace period, and removes the container.
    /// A task this cell does not run is ignored.
    pub fn cancel_task(&self, guid: &str) {
        if let Some(stop) = self.inner.tasks.lock().expect("not poisoned").remove(guid) {
            stop.cancel();
        }
    }

    /// Tasks this cell runs now.
    pub fn running_tasks(&self) -> Vec<String> {
        self.inner.tasks.lock().expect("not poisoned").keys().cloned().collect()
    }

    async fn start_task(&self, guid: &str) -> anyhow::Result<()> {
        let cell_id = self.inner.config.id.clone();
        let Some(task) = self.inner.sched.task(guid).await? else { anyhow::bail!("task {guid} is gone") };
        if task.state != TaskState::Pending {
            return Ok(());
        }
        let Some(task) = self.inner.sched.change_task(guid, TaskEvent::Start { cell_id }).await? else {
            anyhow::bail!("task {guid} is gone")
        };
        match &task.definition.kind {
            TaskKind::Command => self.watch_task(task, None),
            TaskKind::Staging(spec) => {
                let spec = StagingSpec::clone(spec);
                self.watch_staging(task, spec);
            }
        }
        Ok(())
    }

    fn watch_task(&self, task: Task, existing: Option<ContainerInfo>) {
        let stop = CancellationToken::new();
        self.inner.tasks.lock().expect("not poisoned").insert(task.guid.clone(), stop.clone());
        let rep = self.clone();
        tokio::spawn(async move {
            let ending = rep.execute_task(&task, existing, &stop).await;
            let ours = rep.inner.tasks.lock().expect("not poisoned").remove(&task.guid).is_some();
            let id = container_id(&task.guid).ok();
            let failed = match ending {
                Ending::Cancelled => {
                    if let Some(id) = &id {
                        rep.stop_container(id).await;
                    }
                    None
                }
                Ending::Exited(failed) => {
                    if let Some(id) = &id
                        && let Err(e) = rep.inner.node.destroy(id).await
                    {
                        tracing::warn!(%id, error = %e, "could not destroy a finished task's container");
                    }
                    Some(failed)
                }
            };
            rep.task_log(&task, &format!("Cell {} destroyed container for task {}", rep.id(), task.guid));
            // A task cancelled meanwhile is completed already: only this cell's own run reports.
            if let (true, Some(failure_reason)) = (ours, failed) {
                let done = TaskEvent::Complete {
                    cell_id: rep.id().to_string(),
                    failed: failure_reason.is_some(),
                    failure_reason,
                    result: None,
                };
                match rep.inner.sched.change_task(&task.guid, done).await {
                    Ok(_)
                    | Err(hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::TaskTransition { .. }) => {
                    }
                    Err(e) => tracing::warn!(task = %task.guid, error = %e, "could not record a task's end"),
                }
            }
        });
    }

    async fn execute_task(&self, task: &Task, existing: Option<ContainerInfo>, stop: &CancellationToken) -> Ending {
        let node = &self.inner.node;
        let log_source = &task.definition.log_source;
        let info = match existing {
            Some(info) => info,
            None => {
                self.task_log(task, &format!("Cell {} creating container for task {}", self.id(), task.guid));
                let created = tokio::select! {
                    _ = stop.cancelled() => return Ending::Cancelled,
                    created = self.create_task_container(task) => created,
                };
                match created {
                    Ok(info) => info,
                    Err(e) => return Ending::Exited(Some(format!("{log_source}: failed to create container: {e:#}"))),
                }
            }
        };
        let id = info.id.clone();
        let reattached = info.status != Status::Created;
        if !reattached {
            let env = crate::instance::instance_env(self.inner.host_ip, info.network.as_ref());
            if let Err(e) = node.runtime().start_with_env(&id, &env).await {
                return Ending::Exited(Some(format!("{log_source}: failed to start the process: {e}")));
            }
        }
        let output_done = CancellationToken::new();
        let mut followers = Vec::new();
        if let Some(logs) = self.inner.logs.get() {
            let (stdout, stderr) = node.runtime().output_paths(&id);
            for (path, stream) in [(stdout, LogStream::Out), (stderr, LogStream::Err)] {
                let source = self.task_source(task, log_source, stream);
                followers.push(crate::output::follow(logs.clone(), path, source, reattached, output_done.clone()));
            }
        }
        let ending = tokio::select! {
            _ = stop.cancelled() => Ending::Cancelled,
            exit = node.runtime().wait(&id) => Ending::Exited(failure(log_source, &exit)),
        };
        output_done.cancel();
        if matches!(ending, Ending::Exited(_)) {
            // Every line written before the exit reaches the logs before the file goes.
            let _ = tokio::time::timeout(OUTPUT_DRAIN, futures_join(followers)).await;
        }
        ending
    }

    async fn create_task_container(&self, task: &Task) -> anyhow::Result<ContainerInfo> {
        let node = &self.inner.node;
        match &task.definition.rootfs {
            RootFs::Image(reference) if node.images().image(reference).is_err() => {
                node.puller().pull(reference, &hearth_images::PullOptions::default()).await?;
            }
            RootFs::Stack(stack) if !self.inner.config.stacks.contains(stack) => {
                anyhow::bail!("this cell has no stack {stack}");
            }
            _ => {}
        }
        if let Some(layer) = &task.definition.droplet {
            self.ensure_droplet(layer).await?;
        }
        let request = plan(task, self.inner.config.disk_limits).map_err(anyhow::Error::msg)?;
        node.create(&request).await
    }

    /// The lines of a task's stream: the app's source id, instance 0, its source type.
    fn task_source(&self, task: &Task, source_type: &str, stream: LogStream) -> LineSource {
        let d = &task.definition;
        let source = LineSource::new(&d.log_source_id, "0", source_type, stream);
        d.metric_tags.iter().fold(source, |s, (k, v)| s.with_tag(k, v))
    }

    /// A `CELL` line in the task's app logs.
    fn task_log(&self, task: &Task, text: &str) {
        if let Some(logs) = self.inner.logs.get() {
            let source = self.task_source(task, "CELL", LogStream::Out);
            let _ = logs.append(source.envelope(text.as_bytes().to_vec()));
        }
    }

    /// After a restart: watch on the tasks whose container is still here (a finished one's
    /// exit status is on disk), fail those whose container is gone or never started, and
    /// remove `task-` containers no running task owns.
    pub(crate) async fn reattach_tasks(&self) -> anyhow::Result<()> {
        let me = self.inner.config.id.clone();
        let tasks = self.inner.sched.tasks_on_cell(&me).await?;
        let mut owned = BTreeSet::new();
        for task in tasks.into_iter().filter(|t| t.state == TaskState::Running && t.cell_id.as_ref() == Some(&me)) {
            let id = container_id(&task.guid).map_err(anyhow::Error::msg)?;
            match self.inner.node.runtime().lookup(&id).await? {
                Some(info) if info.status != Status::Created => {
                    owned.insert(id);
                    self.watch_task(task, Some(info));
                }
                _ => {
                    let _ = self.inner.node.destroy(&id).await;
                    let reason = format!("{}: container lost when the cell restarted", task.definition.log_source);
                    let lost = TaskEvent::Complete {
                        cell_id: me.clone(),
                        failed: true,
                        failure_reason: Some(reason),
                        result: None,
                    };
                    if let Err(e) = self.inner.sched.change_task(&task.guid, lost).await {
                        tracing::warn!(task = %task.guid, error = %e, "could not record a lost task");
                    }
                }
            }
        }
        for id in self.inner.node.runtime().list().await? {
            // No staging outlives its cell's restart (its task was failed above).
            let staging = id.as_str().starts_with(crate::staging_task::STAGING_PREFIX);
            if (staging || id.as_str().starts_with(TASK_PREFIX)) && !owned.contains(&id) {
                tracing::info!(%id, "destroying a task container no running task owns");
                self.inner.node.destroy(&id).await?;
            }
        }
        Ok(())
    }
}

/// Waits for every handle (a panicked or aborted one counts as done).
async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hearth_scheduler::TaskDefinition;

    use super::*;

    fn task() -> Task {
        let definition = TaskDefinition {
            app_guid: "app".into(),
            memory_mb: 256,
            disk_mb: 512,
            max_pids: 1024,
            rootfs: RootFs::Stack("cflinuxfs4".into()),
            droplet: Some(format!("sha256:{}", "b".repeat(64))),
            command: "rake db:migrate".into(),
            env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
            log_source_id: "app".into(),
            log_source: "APP/TASK/migrate".into(),
            metric_tags: BTreeMap::new(),
            placement_tags: BTreeSet::new(),
            completion_callback_url: None,
            kind: hearth_scheduler::TaskKind::Command,
        };
        Task::pending("t-1", definition, hearth_scheduler::Time::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn a_task_runs_its_command_with_the_droplet_limits_and_a_network_but_no_ports() {
        let r = plan(&task(), true).unwrap();
        assert_eq!(r.id.as_str(), "task-t-1");
        assert_eq!(r.args, ["/bin/sh", "-c", "rake db:migrate"]);
        assert_eq!(r.layers.len(), 1);
        for want in ["GREETING=hi", "CF_INSTANCE_GUID=t-1", "HOME=/home/vcap"] {
            assert!(r.env.iter().any(|e| e == want), "{want} in {:?}", r.env);
        }
        assert!(!r.env.iter().any(|e| e.starts_with("PORT=")), "a task listens on no port");
        assert!(r.network && r.ports.is_empty());
        assert_eq!((r.memory_bytes, r.disk_limit, r.pids), (Some(256 << 20), Some(512 << 20), Some(1024)));
        let mut bad = task();
        bad.guid = "a/b".into();
        assert!(plan(&bad, false).is_err());
    }

    #[test]
    fn exits_read_as_cf_reports_them() {
        let src = "APP/TASK/migrate";
        assert_eq!(failure(src, &Ok(ExitStatus::Code(0))), None);
        assert_eq!(failure(src, &Ok(ExitStatus::Code(3))).as_deref(), Some("APP/TASK/migrate: Exited with status 3"));
        assert!(failure(src, &Ok(ExitStatus::Signal(9))).unwrap().contains("137"));
    }
}
