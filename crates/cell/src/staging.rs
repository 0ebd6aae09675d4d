//! Buildpack staging on this machine (Diego's staging task with the buildpack app
//! lifecycle's builder): a container on the host stack gets the app's files and the
//! buildpacks, runs the builder (detect in position order or the named buildpacks, supply
//! for all but the last, finalize — or legacy compile — and release for the last) as an
//! exec'd process whose output streams out line by line, and hands back the droplet: a
//! layer in the image store (laid over the stack for every instance, no copy) and a tgz in
//! Cloud Foundry's droplet layout (`app/`, `deps/`, `profile.d/`, `staging_info.yml`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hearth_containers::{ContainerId, ProcessSpec, User};
use hearth_images::Digest;
use tokio::io::AsyncRead;

use crate::node::{ContainerRequest, Node};

/// The builder, run as CF's `vcap` user inside the staging container. Exit codes are the
/// buildpack lifecycle's: 222 nothing detected, 223 compile failed, 224 release failed.
const BUILDER: &str = r#"#!/bin/sh
set -e
app=/tmp/staging/app; deps=/tmp/staging/deps; cache=/tmp/staging/cache; out=/tmp/staging/out
mkdir -p "$deps" "$cache" "$out" /tmp/staging/profile.d
export DEPS_DIR="$deps"
bps=$(ls -d /tmp/buildpacks/*/ 2>/dev/null | sed 's#/$##' | sort)
[ -n "$bps" ] || { echo "No buildpacks are available for staging" >&2; exit 222; }
for bp in $bps; do chmod -R u+rx "$bp/bin" 2>/dev/null || true; done
if [ "$HEARTH_DETECT" = 1 ]; then
  chosen=""
  for bp in $bps; do
    [ -f "$bp/bin/detect" ] || continue
    if output=$("$bp/bin/detect" "$app" 2>&1); then
      chosen="$bp"; printf '%s' "$output" > "$out/detect_output"; break
    fi
  done
  [ -n "$chosen" ] || { echo "None of the buildpacks detected a compatible application" >&2; exit 222; }
  bps="$chosen"
fi
n=$(echo $bps | wc -w); i=0
for bp in $bps; do
  mkdir -p "$deps/$i" "$cache/$i"
  name=${bp##*/}; name=${name#*-}
  if [ $((i + 1)) -lt "$n" ]; then
    [ -f "$bp/bin/supply" ] || { echo "Buildpack $name has no bin/supply: only the last buildpack may lack it" >&2; exit 223; }
    echo "-----> Supplying with $name"
    "$bp/bin/supply" "$app" "$cache/$i" "$deps" "$i" || exit 223
  else
    if [ -f "$bp/bin/finalize" ]; then
      [ -f "$bp/bin/supply" ] && { echo "-----> Supplying with $name"; "$bp/bin/supply" "$app" "$cache/$i" "$deps" "$i" || exit 223; }
      echo "-----> Finalizing with $name"
      "$bp/bin/finalize" "$app" "$cache/$i" "$deps" "$i" /tmp/staging/profile.d || exit 223
    else
      echo "-----> Compiling with $name"
      "$bp/bin/compile" "$app" "$cache/$i" || exit 223
    fi
    if [ -f "$bp/bin/release" ]; then "$bp/bin/release" "$app" > "$out/release.yml" || exit 224; fi
    printf '%s' "$name" > "$out/buildpack"
  fi
  i=$((i + 1))
done
# Supply buildpacks' profile.d scripts join the droplet's (CF's libbuildpack does the same).
for d in "$deps"/*/profile.d; do
  [ -d "$d" ] || continue
  i=${d%/profile.d}; i=${i##*/}
  for f in "$d"/*.sh; do [ -f "$f" ] && cp "$f" "/tmp/staging/profile.d/${i}_${f##*/}"; done
done
exit 0
"#;

/// What to stage.
pub struct StagingJob {
    /// A unique id (the build's guid).
    pub id: String,
    /// The app's files, extracted on this machine.
    pub app_dir: PathBuf,
    /// Buildpacks (name, extracted directory) in the order to try or run them.
    pub buildpacks: Vec<(String, PathBuf)>,
    /// Detect among `buildpacks` (none named by the app) instead of running them all.
    pub detect: bool,
    /// `NAME=value` for the builder (CF_STACK, VCAP_APPLICATION, MEMORY_LIMIT, …).
    pub env: Vec<String>,
    pub memory_mb: u64,
    /// The longest the builder may run; past it the container is destroyed.
    pub timeout: std::time::Duration,
    /// The app's build cache from its last staging (a tgz of `cache/...`), restored as
    /// the buildpacks' cache directories.
    pub cache_tgz: Option<PathBuf>,
}

/// What staging made.
#[derive(Debug)]
pub struct Staged {
    /// The droplet as a layer in this machine's image store.
    pub layer: Digest,
    /// The droplet tgz in CF's layout (a temp file the caller stores and removes).
    pub droplet_tgz: PathBuf,
    pub buildpack: String,
    pub detect_output: String,
    /// `bin/release`'s YAML (empty if it has none).
    pub release_yaml: String,
    /// The app's `Procfile`, if it has one.
    pub procfile: Option<String>,
    /// The buildpacks' cache directories after this staging (a temp tgz of `cache/...` the
    /// caller stores and removes); `None` if they could not be saved.
    pub cache_tgz: Option<PathBuf>,
}

/// Why staging failed, in the buildpack lifecycle's terms.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("NoAppDetectedError - An app was not successfully detected by any available buildpack")]
    NoAppDetected,
    #[error("BuildpackCompileFailed - App staging failed in the buildpack compile phase")]
    CompileFailed,
    #[error("BuildpackReleaseFailed - App staging failed in the buildpack release phase")]
    ReleaseFailed,
    #[error("StagingTimeExpired - Staging time expired: staging ran longer than {0} s and was stopped")]
    TimeExpired(u64),
    #[error(
        "StagingError - Staging error: staging ran out of memory ({0} MB): push with a larger -m or staging memory"
    )]
    OutOfMemory(u64),
    #[error("StagingError - Staging error: {0}")]
    Other(String),
}

/// CF's `vcap` user, who runs staging and the app.
const VCAP: User = User { uid: 2000, gid: 2000 };

/// Stages `job` in a container on this node; `output` gets the builder's stdout and stderr.
pub async fn stage(
    node: &Node,
    job: &StagingJob,
    work_dir: &Path,
    output: impl FnOnce(Box<dyn AsyncRead + Send + Unpin>, Box<dyn AsyncRead + Send + Unpin>),
) -> Result<Staged, StagingError> {
    let id = ContainerId::new(format!("staging-{}", job.id)).map_err(|e| StagingError::Other(e.to_string()))?;
    let keep_alive = "while :; do sleep 3600; done".to_string();
    let mut request = ContainerRequest::new(id.clone(), vec!["/bin/sh".into(), "-c".into(), keep_alive]);
    request.memory_bytes = Some(job.memory_mb.max(64) << 20);
    request.pids = Some(4096);
    request.cwd = Some("/tmp".into());
    request.env = job.env.clone();
    request.network = true;
    let result = async {
        node.run(&request)
            .await
            .map_err(|e| StagingError::Other(format!("cannot make the staging container: {e:#}")))?;
        run_builder(node, &id, job, work_dir, output).await
    }
    .await;
    if let Err(e) = node.destroy(&id).await {
        tracing::warn!(%id, error = %e, "removing a staging container failed");
    }
    result
}

async fn run_builder(
    node: &Node,
    id: &ContainerId,
    job: &StagingJob,
    work_dir: &Path,
    output: impl FnOnce(Box<dyn AsyncRead + Send + Unpin>, Box<dyn AsyncRead + Send + Unpin>),
) -> Result<Staged, StagingError> {
    let runtime = node.runtime();
    let other = |e: anyhow::Error| StagingError::Other(format!("{e:#}"));
    let put = |dir: PathBuf, dest: String| async move {
        let tar = tokio::task::spawn_blocking(move || tar_of_dir(&dir)).await.map_err(anyhow::Error::from)??;
        runtime.stream_in(id, &dest, std::io::Cursor::new(tar), VCAP).await?;
        anyhow::Ok(())
    };
    put(job.app_dir.clone(), "/tmp/staging/app".into()).await.map_err(other)?;
    if let Some(cache) = &job.cache_tgz
        && let Err(e) = restore_cache(node, id, cache, work_dir, &job.id).await
    {
        // A cache is only a head start: stage without it.
        tracing::warn!(%id, error = %format!("{e:#}"), "restoring the build cache failed");
    }
    for (i, (name, dir)) in job.buildpacks.iter().enumerate() {
        put(dir.clone(), format!("/tmp/buildpacks/{i:03}-{name}")).await.map_err(other)?;
    }
    let lifecycle = work_dir.join(format!("lifecycle-{}", job.id));
    std::fs::create_dir_all(&lifecycle).map_err(|e| StagingError::Other(e.to_string()))?;
    std::fs::write(lifecycle.join("builder"), BUILDER).map_err(|e| StagingError::Other(e.to_string()))?;
    let lifecycle_put = put(lifecycle.clone(), "/tmp/lifecycle".into()).await;
    let _ = std::fs::remove_dir_all(&lifecycle);
    lifecycle_put.map_err(other)?;

    let mut spec = ProcessSpec::new(vec!["/bin/sh".into(), "/tmp/lifecycle/builder".into()]);
    spec.env = vec![format!("HEARTH_DETECT={}", u8::from(job.detect))];
    spec.cwd = Some("/tmp/staging/app".into());
    let mut process = runtime.exec(id, spec).await.map_err(|e| other(e.into()))?;
    if let (Some(out), Some(err)) = (process.take_stdout(), process.take_stderr()) {
        output(Box::new(out), Box::new(err));
    }
    let status = match tokio::time::timeout(job.timeout, process.wait()).await {
        Ok(status) => status.map_err(|e| other(e.into()))?,
        Err(_) => return Err(StagingError::TimeExpired(job.timeout.as_secs())),
    };
    let oom_killed = || async { runtime.info(id).await.ok().and_then(|i| i.usage.oom_kills).is_some_and(|n| n > 0) };
    if status != hearth_containers::ExitStatus::Code(0) && oom_killed().await {
        return Err(StagingError::OutOfMemory(job.memory_mb));
    }
    match status {
        hearth_containers::ExitStatus::Code(0) => {}
        hearth_containers::ExitStatus::Code(222) => return Err(StagingError::NoAppDetected),
        hearth_containers::ExitStatus::Code(223) => return Err(StagingError::CompileFailed),
        hearth_containers::ExitStatus::Code(224) => return Err(StagingError::ReleaseFailed),
        other => return Err(StagingError::Other(format!("the builder ended with {other:?}"))),
    }
    let tarball = work_dir.join(format!("staged-{}.tar", job.id));
    let mut stream = runtime.stream_out(id, "/tmp/staging").await.map_err(|e| other(e.into()))?;
    let mut file = tokio::fs::File::create(&tarball).await.map_err(|e| StagingError::Other(e.to_string()))?;
    let copied = tokio::io::copy(&mut stream, &mut file).await;
    drop(file);
    let staged = match copied {
        Ok(_) => {
            let (images, tarball, work_dir, job_id) =
                (node.images().clone(), tarball.clone(), work_dir.to_path_buf(), job.id.clone());
            tokio::task::spawn_blocking(move || droplet_from(&images, &tarball, &work_dir, &job_id))
                .await
                .map_err(|e| StagingError::Other(e.to_string()))?
                .map_err(other)
        }
        Err(e) => Err(StagingError::Other(format!("cannot copy the staged files out: {e}"))),
    };
    let _ = std::fs::remove_file(&tarball);
    let mut staged = staged?;
    staged.cache_tgz = match save_cache(node, id, work_dir, &job.id).await {
        Ok(tgz) => Some(tgz),
        Err(e) => {
            tracing::warn!(%id, error = %format!("{e:#}"), "saving the build cache failed");
            None
        }
    };
    Ok(staged)
}

/// Unpacks a saved build cache (`cache/...`) into the staging container's `/tmp/staging`.
async fn restore_cache(node: &Node, id: &ContainerId, tgz: &Path, work_dir: &Path, job_id: &str) -> anyhow::Result<()> {
    let tar_path = work_dir.join(format!("cache-in-{job_id}.tar"));
    let (from, to) = (tgz.to_path_buf(), tar_path.clone());
    let unpacked = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&from)?);
        std::io::copy(&mut gz, &mut std::fs::File::create(&to)?).context("the saved build cache is unreadable")?;
        Ok(())
    })
    .await?;
    let result = async {
        unpacked?;
        let tar = tokio::fs::File::open(&tar_path).await?;
        node.runtime().stream_in(id, "/tmp/staging", tar, VCAP).await?;
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_file(&tar_path);
    result
}

/// The staging container's `/tmp/staging/cache` as a tgz (entries `cache/...`) in `work_dir`.
async fn save_cache(node: &Node, id: &ContainerId, work_dir: &Path, job_id: &str) -> anyhow::Result<PathBuf> {
    let tar_path = work_dir.join(format!("cache-out-{job_id}.tar"));
    let tgz_path = work_dir.join(format!("cache-{job_id}.tgz"));
    let result = async {
        let mut stream = node.runtime().stream_out(id, "/tmp/staging/cache").await?;
        let mut file = tokio::fs::File::create(&tar_path).await?;
        tokio::io::copy(&mut stream, &mut file).await?;
        drop(file);
        let (from, to) = (tar_path.clone(), tgz_path.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&to)?, flate2::Compression::fast());
            std::io::copy(&mut std::fs::File::open(&from)?, &mut gz)?;
            gz.finish()?;
            Ok(())
        })
        .await??;
        anyhow::Ok(tgz_path.clone())
    }
    .await;
    let _ = std::fs::remove_file(&tar_path);
    if result.is_err() {
        let _ = std::fs::remove_file(&tgz_path);
    }
    result
}

/// A tar of `dir`'s contents (entries relative to it).
fn tar_of_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir).with_context(|| format!("cannot pack {}", dir.display()))?;
    Ok(tar.into_inner()?)
}

/// From the staged tree (entries `staging/...`) to the droplet tgz (`app/...`, `deps/...`,
/// `profile.d/...`, `staging_info.yml`), imported as the droplet's layer the way an
/// uploaded droplet is (so both give one tgz the same layer).
fn droplet_from(
    images: &hearth_images::Store,
    staged_tar: &Path,
    work_dir: &Path,
    job_id: &str,
) -> anyhow::Result<Staged> {
    let tgz_path = work_dir.join(format!("droplet-{job_id}.tgz"));
    let mut tgz = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(&tgz_path)?,
        flate2::Compression::fast(),
    ));
    let (mut buildpack, mut detect_output, mut release_yaml) = (String::new(), String::new(), String::new());
    let mut procfile = None;
    let mut archive = tar::Archive::new(std::fs::File::open(staged_tar)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        let Some(rel) = path.strip_prefix("staging/") else { continue };
        let small = |entry: &mut tar::Entry<'_, std::fs::File>| -> anyhow::Result<String> {
            let mut text = String::new();
            entry.take(1 << 20).read_to_string(&mut text)?;
            Ok(text)
        };
        match rel {
            "out/buildpack" => buildpack = small(&mut entry)?,
            "out/detect_output" => detect_output = small(&mut entry)?,
            "out/release.yml" => release_yaml = small(&mut entry)?,
            "app/Procfile" => {
                let text = small(&mut entry)?;
                let mut header = entry.header().clone();
                header.set_size(text.len() as u64);
                tgz.append_data(&mut header, rel, text.as_bytes())?;
                procfile = Some(text);
            }
            _ if ["app", "deps", "profile.d"].iter().any(|top| rel == *top || rel.starts_with(&format!("{top}/"))) => {
                let mut header = entry.header().clone();
                match entry.link_name()?.map(|l| l.to_path_buf()) {
                    Some(target) => tgz.append_link(&mut header, rel, target)?,
                    None => {
                        let mut data = Vec::new();
                        if header.entry_type().is_file() {
                            entry.read_to_end(&mut data)?;
                        }
                        tgz.append_data(&mut header, rel, data.as_slice())?;
                    }
                }
            }
            _ => {}
        }
    }
    if buildpack.is_empty() {
        bail!("the builder reported no buildpack");
    }
    let info = serde_json::json!({"detected_buildpack": buildpack, "start_command": ""}).to_string();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(info.len() as u64);
    tgz.append_data(&mut header, "staging_info.yml", info.as_bytes())?;
    tgz.into_inner()?.finish()?;
    let layer = crate::droplet::import(images, &tgz_path, work_dir);
    let layer = match layer {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&tgz_path);
            return Err(e);
        }
    };
    Ok(Staged { layer, droplet_tgz: tgz_path, buildpack, detect_output, release_yaml, procfile, cache_tgz: None })
}
