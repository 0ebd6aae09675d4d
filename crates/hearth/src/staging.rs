//! Buildpack staging through the scheduler: [`CellStager`] is the API's `Stager` — it
//! creates a staging task (the build's staging memory and disk, the package's and
//! buildpacks' blob keys), lets the auction place it on any cell with room, waits for the
//! task's end through the scheduler's events, and answers the droplet the cell stored, or
//! CF's staging error. [`BlobStagingBits`] is a cell's in-process way to the blobstore
//! (fetch and safely extract zips, fetch and keep the build cache, store the droplet).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hearth_blobstore::{BlobStore, Namespace};
use hearth_cell::staging_task::{Bits, StagingBits, StoredDroplet};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{
    Event, RootFs, StagingBuildpack, StagingResult, StagingSpec, Task, TaskDefinition, TaskEvent, TaskKind, TaskState,
};

/// How often a staging's task is read again when no event says it changed.
const RECHECK: Duration = Duration::from_secs(5);

/// Stages on whichever cell the auction picks, and imports uploaded droplets on this node.
pub struct CellStager {
    pub scheduler: SchedulerStore,
    /// This machine's node (droplet uploads and copies become a layer here).
    pub node: Arc<hearth_cell::Node>,
    pub work_dir: std::path::PathBuf,
    /// The longest a staging may run (the builder's limit on the cell).
    pub timeout: Duration,
}

impl CellStager {
    /// The staging task of `job` (its guid is the build's).
    pub fn definition(&self, job: &hearth_api::StagingJob) -> TaskDefinition {
        let spec = StagingSpec {
            build_guid: job.build_guid.clone(),
            package_key: job.package_key.clone(),
            buildpacks: job
                .buildpacks
                .iter()
                .map(|(name, key)| StagingBuildpack { name: name.clone(), blob_key: key.clone() })
                .collect(),
            detect: job.detect,
            timeout_secs: self.timeout.as_secs().max(1),
        };
        TaskDefinition {
            app_guid: job.app_guid.clone(),
            memory_mb: job.memory_mb.max(1),
            disk_mb: job.disk_mb.max(1),
            max_pids: 4096,
            rootfs: RootFs::Stack(job.stack.clone()),
            droplet: None,
            command: String::new(),
            env: job.env.iter().filter_map(|e| e.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect(),
            log_source_id: job.app_guid.clone(),
            log_source: "STG".into(),
            metric_tags: Default::default(),
            placement_tags: Default::default(),
            completion_callback_url: None,
            kind: TaskKind::Staging(Box::new(spec)),
        }
    }

    /// Creates the staging task, waits for its end and removes it; answers its result or CF's
    /// staging error.
    pub async fn run(&self, job: hearth_api::StagingJob) -> Result<StagingResult, String> {
        let guid = job.build_guid.clone();
        let mut events = self.scheduler.subscribe();
        self.scheduler
            .create_task(&guid, self.definition(&job))
            .await
            .map_err(|e| format!("StagingError - Staging error: cannot create the staging task: {e}"))?;
        // Past the builder's own limit the cell has failed it already; this is only for a
        // staging whose cell went away without a word.
        let deadline = tokio::time::Instant::now() + self.timeout * 2 + Duration::from_secs(60);
        let ended = loop {
            match self.scheduler.task(&guid).await {
                Ok(Some(task)) if matches!(task.state, TaskState::Completed | TaskState::Resolving) => break Ok(task),
                Ok(Some(_)) => {}
                Ok(None) => break Err("StagingError - Staging error: the staging task was lost".to_string()),
                Err(e) => tracing::warn!(task = %guid, error = %e, "reading a staging task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = self.scheduler.change_task(&guid, &TaskEvent::Cancel).await;
                    break Err("StagingError - Staging error: staging never finished (its cell is gone)".to_string());
                }
                _ = tokio::time::sleep(RECHECK) => {}
                _ = changed(&mut events, &guid) => {}
            }
        };
        if let Err(e) = self.scheduler.change_task(&guid, &TaskEvent::Resolve).await
            && !matches!(e, hearth_scheduler::Error::NotFound { .. })
        {
            tracing::warn!(task = %guid, error = %e, "could not remove a finished staging task");
        }
        outcome(&ended?)
    }
}

/// Waits for an event about task `guid` (or for events having been missed).
async fn changed(events: &mut tokio::sync::broadcast::Receiver<Event>, guid: &str) {
    loop {
        match events.recv().await {
            Ok(Event::TaskChanged { after: t, .. } | Event::TaskRemoved(t)) if t.guid == guid => return,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// A finished staging task as the build sees it. Pure.
pub fn outcome(task: &Task) -> Result<StagingResult, String> {
    if task.failed {
        return Err(staging_error(task.failure_reason.as_deref().unwrap_or("staging failed")));
    }
    StagingResult::from_json(task.result.as_deref().unwrap_or_default())
        .map_err(|e| format!("StagingError - Staging error: {e}"))
}

/// A staging task's failure reason as CC reports it: the cell's own CF texts stand; the
/// auction's refusals are `InsufficientResources` or `NoCompatibleCell`; the rest are
/// `StagingError`s. Pure.
pub fn staging_error(reason: &str) -> String {
    const CF_IDS: [&str; 6] = [
        "NoAppDetectedError - ",
        "BuildpackCompileFailed - ",
        "BuildpackReleaseFailed - ",
        "StagingTimeExpired - ",
        "StagingError - ",
        "InsufficientResources - ",
    ];
    if CF_IDS.iter().any(|id| reason.starts_with(id)) {
        reason.to_string()
    } else if reason.starts_with("insufficient resources") {
        format!("InsufficientResources - {reason}")
    } else if reason.starts_with("found no") || reason.starts_with("no cells") {
        format!("NoCompatibleCell - {reason}")
    } else {
        format!("StagingError - Staging error: {reason}")
    }
}

impl hearth_api::Stager for CellStager {
    fn stage(&self, job: hearth_api::StagingJob) -> hearth_api::BoxFuture<'static, Result<StagingResult, String>> {
        let stager = CellStager {
            scheduler: self.scheduler.clone(),
            node: self.node.clone(),
            work_dir: self.work_dir.clone(),
            timeout: self.timeout,
        };
        Box::pin(async move { stager.run(job).await })
    }

    fn import_droplet(&self, tgz: std::path::PathBuf) -> hearth_api::BoxFuture<'static, Result<String, String>> {
        let (node, work_dir) = (self.node.clone(), self.work_dir.clone());
        Box::pin(async move {
            std::fs::create_dir_all(&work_dir).map_err(|e| e.to_string())?;
            crate::droplets::import(&node, &tgz, &work_dir).await
        })
    }
}

/// A cell's staging bits from this process's blobstore.
pub struct BlobStagingBits {
    pub blobs: BlobStore,
    /// What an extracted zip may hold (the platform's `[limits]`).
    pub limits: hearth_blobstore::archive::Limits,
}

impl StagingBits for BlobStagingBits {
    fn unpack<'a>(
        &'a self,
        bits: Bits,
        key: &'a str,
        dir: &'a Path,
    ) -> hearth_cell::rep::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let ns = match bits {
                Bits::Package => Namespace::Packages,
                Bits::Buildpack => Namespace::Buildpacks,
            };
            let zip = dir.with_extension("zip");
            let fetched = self.blobs.get_to_file(ns, key, &zip).await;
            let extracted = match fetched {
                Ok(_) => {
                    let (z, d, limits) = (zip.clone(), dir.to_path_buf(), self.limits);
                    tokio::task::spawn_blocking(move || hearth_blobstore::archive::extract_zip(&z, &d, &limits))
                        .await
                        .map_err(anyhow::Error::from)
                        .and_then(|r| r.map(|_| ()).map_err(anyhow::Error::from))
                }
                Err(e) => Err(e.into()),
            };
            let _ = std::fs::remove_file(&zip);
            extracted
        })
    }

    fn fetch_cache<'a>(
        &'a self,
        app_guid: &'a str,
        dest: &'a Path,
    ) -> hearth_cell::rep::BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            match self.blobs.get_to_file(Namespace::BuildpackCache, app_guid, dest).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == hearth_blobstore::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn store_cache<'a>(
        &'a self,
        app_guid: &'a str,
        tgz: &'a Path,
    ) -> hearth_cell::rep::BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.blobs.put_file_as(Namespace::BuildpackCache, app_guid, tgz).await?;
            Ok(())
        })
    }

    fn store_droplet<'a>(&'a self, tgz: &'a Path) -> hearth_cell::rep::BoxFuture<'a, anyhow::Result<StoredDroplet>> {
        Box::pin(async move {
            let blob = self.blobs.put_file(Namespace::Droplets, tgz).await?;
            Ok(StoredDroplet { key: blob.key, sha256: blob.sha256 })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_read_as_cc_reports_staging_errors() {
        let no_app = "NoAppDetectedError - An app was not successfully detected by any available buildpack";
        assert_eq!(staging_error(no_app), no_app);
        assert_eq!(
            staging_error("insufficient resources: memory"),
            "InsufficientResources - insufficient resources: memory"
        );
        assert_eq!(
            staging_error("found no compatible cell for rootfs cflinuxfs3"),
            "NoCompatibleCell - found no compatible cell for rootfs cflinuxfs3"
        );
        assert_eq!(staging_error("task was cancelled"), "StagingError - Staging error: task was cancelled");
    }
}
