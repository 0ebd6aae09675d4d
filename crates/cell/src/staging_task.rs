//! Staging as a scheduler task (Diego's staging task): the auction places a PENDING task of
//! kind `Staging` on a cell with room for the build's staging memory and disk; that cell
//! fetches the package, the buildpacks and the app's build cache through its
//! [`StagingBits`], runs the builder ([`crate::staging::stage`]) with its output as `STG`
//! lines in the app's logs, stores the droplet tgz and the new cache through the same
//! bits, and completes the task with a [`StagingResult`] (JSON) — or fails it with CF's
//! staging error text (`NoAppDetectedError - …`, `StagingTimeExpired - …`).
//!
//! A cancelled staging (the store completed the task already) stops at once: the builder's
//! container is destroyed and nothing is reported. Whatever a staging fetched or made on
//! this machine lives under one work directory that goes with it, whatever happens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_logs::{LineSource, LogStream};
use hearth_scheduler::{StagingResult, StagingSpec, Task, TaskEvent};
use tokio_util::sync::CancellationToken;

use crate::rep::{BoxFuture, Rep};
use crate::staging::{self, StagingError, StagingJob};

/// Staging containers' ids start with this (`staging-<build guid>`); none outlives a
/// restart of its cell.
pub const STAGING_PREFIX: &str = "staging-";

/// Which zip a staging fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bits {
    Package,
    Buildpack,
}

/// A droplet tgz as stored: its blob key and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDroplet {
    pub key: String,
    pub sha256: String,
}

/// Where a staging cell gets its inputs and puts its outputs: the platform's blobstore
/// (in-process on the machine that runs the API; over HTTP for other machines).
pub trait StagingBits: Send + Sync + 'static {
    /// Fetches the zip `key` of `bits` and extracts it (safely, within the platform's
    /// limits) into `dir`, which must not exist yet.
    fn unpack<'a>(&'a self, bits: Bits, key: &'a str, dir: &'a Path) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Writes the app's build cache tgz to `dest`; `false` if the app has none.
    fn fetch_cache<'a>(&'a self, app_guid: &'a str, dest: &'a Path) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Keeps `tgz` as the app's build cache (replacing the one before).
    fn store_cache<'a>(&'a self, app_guid: &'a str, tgz: &'a Path) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Stores a droplet tgz; answers its key and SHA-256.
    fn store_droplet<'a>(&'a self, tgz: &'a Path) -> BoxFuture<'a, anyhow::Result<StoredDroplet>>;
}

impl Rep {
    /// Takes staging tasks: their bits come from and go to `bits`.
    pub fn stage_with(&self, bits: Arc<dyn StagingBits>) {
        let _ = self.inner.staging_bits.set(bits);
    }

    /// Runs a staging task this cell started (RUNNING here) in the background; its end is
    /// reported unless it was cancelled meanwhile.
    pub(crate) fn watch_staging(&self, task: Task, spec: StagingSpec) {
        let stop = CancellationToken::new();
        self.inner.tasks.lock().expect("not poisoned").insert(task.guid.clone(), stop.clone());
        let rep = self.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                _ = stop.cancelled() => None,
                outcome = rep.stage_task(&task, &spec) => Some(outcome),
            };
            if outcome.is_none() {
                // The builder's future was dropped mid-way: its container goes here.
                if let Ok(id) = hearth_containers::ContainerId::new(format!("{STAGING_PREFIX}{}", spec.build_guid))
                    && let Err(e) = rep.inner.node.destroy(&id).await
                {
                    tracing::warn!(%id, error = %e, "could not destroy a cancelled staging's container");
                }
                let _ = std::fs::remove_dir_all(work_dir(&rep, &task.guid));
            }
            let ours = rep.inner.tasks.lock().expect("not poisoned").remove(&task.guid).is_some();
            let Some(outcome) = outcome.filter(|_| ours) else { return };
            let done = match outcome {
                Ok(result) => TaskEvent::Complete {
                    cell_id: rep.id().to_string(),
                    failed: false,
                    failure_reason: None,
                    result: Some(result.to_json()),
                },
                Err(reason) => TaskEvent::Complete {
                    cell_id: rep.id().to_string(),
                    failed: true,
                    failure_reason: Some(reason),
                    result: None,
                },
            };
            match rep.inner.sched.change_task(&task.guid, done).await {
                Ok(_)
                | Err(hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::TaskTransition { .. }) => {}
                Err(e) => tracing::warn!(task = %task.guid, error = %e, "could not record a staging's end"),
            }
        });
    }

    /// Stages in a work directory of its own, removed afterwards whatever happened.
    async fn stage_task(&self, task: &Task, spec: &StagingSpec) -> Result<StagingResult, String> {
        let bits = self.inner.staging_bits.get().cloned().ok_or_else(|| {
            StagingError::Other("this cell cannot fetch staging bits (no blobstore is wired to it)".into()).to_string()
        })?;
        let work = work_dir(self, &task.guid);
        let _ = std::fs::remove_dir_all(&work);
        let result = match std::fs::create_dir_all(&work) {
            Ok(()) => self.stage_in(task, spec, bits.as_ref(), &work).await,
            Err(e) => Err(StagingError::Other(format!("cannot make {}: {e}", work.display())).to_string()),
        };
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    async fn stage_in(
        &self,
        task: &Task,
        spec: &StagingSpec,
        bits: &dyn StagingBits,
        work: &Path,
    ) -> Result<StagingResult, String> {
        let d = &task.definition;
        let fail = |what: &str, e: anyhow::Error| StagingError::Other(format!("{what}: {e:#}")).to_string();
        let app_dir = work.join("app");
        bits.unpack(Bits::Package, &spec.package_key, &app_dir)
            .await
            .map_err(|e| fail("cannot fetch the package", e))?;
        let mut buildpacks = Vec::new();
        for (i, b) in spec.buildpacks.iter().enumerate() {
            let dir = work.join(format!("buildpack-{i}"));
            let what = format!("cannot fetch buildpack {}", b.name);
            bits.unpack(Bits::Buildpack, &b.blob_key, &dir).await.map_err(|e| fail(&what, e))?;
            buildpacks.push((b.name.clone(), dir));
        }
        let cache_in = work.join("cache-in.tgz");
        let cache_tgz = match bits.fetch_cache(&d.app_guid, &cache_in).await {
            Ok(true) => Some(cache_in),
            Ok(false) => None,
            Err(e) => {
                // A cache is only a head start: stage without it.
                tracing::warn!(app = %d.app_guid, error = %format!("{e:#}"), "fetching the build cache failed");
                None
            }
        };
        let job = StagingJob {
            id: spec.build_guid.clone(),
            app_dir,
            buildpacks,
            detect: spec.detect,
            env: d.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            memory_mb: d.memory_mb,
            timeout: std::time::Duration::from_secs(spec.timeout_secs),
            cache_tgz,
        };
        let logs = self.inner.logs.get().cloned();
        let app = d.app_guid.clone();
        let output = move |out: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                           err: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
            for (reader, stream) in [(out, LogStream::Out), (err, LogStream::Err)] {
                let (logs, source) = (logs.clone(), LineSource::staging(&app, stream));
                tokio::spawn(async move {
                    let _ = hearth_logs::capture(reader, &source, |e| {
                        if let Some(logs) = &logs {
                            let _ = logs.append(e);
                        }
                    })
                    .await;
                });
            }
        };
        let staged = staging::stage(&self.inner.node, &job, work, output).await.map_err(|e| e.to_string())?;
        let cache_stored = match &staged.cache_tgz {
            Some(tgz) => match bits.store_cache(&d.app_guid, tgz).await {
                Ok(()) => true,
                Err(e) => {
                    // A cache that cannot be kept costs the next staging time, not this one its droplet.
                    tracing::warn!(app = %d.app_guid, error = %format!("{e:#}"), "storing the build cache failed");
                    false
                }
            },
            None => false,
        };
        let droplet = bits.store_droplet(&staged.droplet_tgz).await.map_err(|e| fail("cannot store the droplet", e))?;
        Ok(StagingResult {
            layer: staged.layer.to_string(),
            droplet_key: droplet.key,
            droplet_sha256: droplet.sha256,
            buildpack: staged.buildpack,
            detect_output: staged.detect_output,
            release_yaml: staged.release_yaml,
            procfile: staged.procfile,
            cache_stored,
        })
    }
}

/// Where one staging task's files live on this cell.
fn work_dir(rep: &Rep, task_guid: &str) -> PathBuf {
    rep.inner.node.dir().join("staging").join(task_guid)
}
