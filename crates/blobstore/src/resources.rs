//! The resource cache (CF's resource pool): `POST /v3/resource_matches` answers which of an
//! app's files the blobstore already has, so a re-push uploads only the rest; package assembly
//! builds the full package from the uploaded zip plus those known files, and caches every
//! uploaded file for the next push.
//!
//! The pool keeps files of `PoolRule::min_size..=PoolRule::max_size` bytes (Cloud Controller's
//! `resource_pool.minimum_size` / `maximum_size`); a file is known when a blob with its SHA-1 and
//! its size is stored in `Namespace::Resources`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use crate::archive::{self, Limits, confine};
use crate::error::{Error, Result};
use crate::namespace::{Blob, Namespace};
use crate::store::BlobStore;

/// Heads sent to the store at once while matching.
const MATCH_CONCURRENCY: usize = 16;
/// Resource files fetched or cached at once while assembling.
const TRANSFER_CONCURRENCY: usize = 8;

/// Which files the pool caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRule {
    pub min_size: u64,
    pub max_size: u64,
}

impl PoolRule {
    /// 1 byte to 512 MiB (Cloud Controller's default `maximum_size`).
    pub const DEFAULT: PoolRule = PoolRule { min_size: 1, max_size: 512 * 1024 * 1024 };

    pub fn allows(&self, size: u64) -> bool {
        self.min_size <= size && size <= self.max_size
    }
}

impl Default for PoolRule {
    fn default() -> PoolRule {
        PoolRule::DEFAULT
    }
}

/// One app file as the cf CLI describes it (`checksum.value`, `size_in_bytes`, `path`, `mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub sha1: String,
    pub size: u64,
    pub path: String,
    /// Permission bits (`0644`); files without one get 0644.
    pub mode: Option<u32>,
}

impl Resource {
    fn check(&self) -> Result<PathBuf> {
        Namespace::Resources.check_key(&self.sha1).map_err(|_| Error::BadResource {
            path: self.path.clone(),
            reason: format!("checksum {:?} is not a SHA-1 (40 lowercase hex digits)", self.sha1),
        })?;
        let rel = confine::relative(&self.path)?;
        if rel.as_os_str().is_empty() {
            return Err(Error::BadResource { path: self.path.clone(), reason: "the path is empty".into() });
        }
        Ok(rel)
    }
}

/// The resources of `wanted` the pool has (same SHA-1 and size), in the order asked.
/// A malformed SHA-1 or path is `Error::BadResource` (the request changes nothing).
pub async fn match_resources(store: &BlobStore, rule: &PoolRule, wanted: &[Resource]) -> Result<Vec<Resource>> {
    for r in wanted {
        r.check()?;
    }
    let known: Vec<bool> = futures_util::stream::iter(wanted.iter())
        .map(|r| async move {
            if !rule.allows(r.size) {
                return Ok(false);
            }
            Ok(store.size(Namespace::Resources, &r.sha1).await? == Some(r.size))
        })
        .buffered(MATCH_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(wanted.iter().zip(known).filter(|(_, k)| *k).map(|(r, _)| r.clone()).collect())
}

/// What `assemble_package` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembly {
    /// The full package zip, in `Namespace::Packages`.
    pub package: Blob,
    /// Files taken from the upload.
    pub uploaded_files: u64,
    /// Files taken from the resource cache.
    pub cached_files: u64,
    /// Uploaded files now in the resource cache.
    pub newly_cached: u64,
}

/// Builds a package from `upload` (a zip; `None` when every file is known) and `resources`
/// (files the pool has), stores it, and caches the uploaded files. Works under a temp
/// directory in `work_dir`, removed at the end whatever happens; bad input stores nothing.
pub async fn assemble_package(
    store: &BlobStore,
    work_dir: &Path,
    upload: Option<&Path>,
    resources: &[Resource],
    limits: &Limits,
    rule: &PoolRule,
) -> Result<Assembly> {
    let rels: Vec<PathBuf> = resources.iter().map(Resource::check).collect::<Result<_>>()?;
    let work = tempfile::TempDir::new_in(work_dir).map_err(Error::io("creating a directory in", work_dir))?;
    let tree = work.path().join("tree");
    let (extracted, uploaded) = {
        let (tree, upload, limits) = (tree.clone(), upload.map(Path::to_path_buf), *limits);
        blocking(move || {
            let extracted = match upload {
                Some(zip) => archive::extract_zip(&zip, &tree, &limits)?,
                None => {
                    std::fs::create_dir(&tree).map_err(Error::io("creating", &tree))?;
                    archive::Extracted::default()
                }
            };
            Ok((extracted, regular_files(&tree)?))
        })
        .await?
    };

    let total = resources.iter().fold(extracted.bytes, |t, r| t.saturating_add(r.size));
    if total > limits.max_unpacked_bytes {
        return Err(Error::UnpackedTooLarge { limit: limits.max_unpacked_bytes });
    }
    if extracted.files + extracted.dirs + extracted.symlinks + resources.len() as u64 > limits.max_entries {
        return Err(Error::TooManyEntries { limit: limits.max_entries });
    }
    let mut placed = Vec::with_capacity(resources.len());
    let mut seen = std::collections::HashSet::new();
    for (r, rel) in resources.iter().zip(&rels) {
        if !seen.insert(rel) {
            return Err(Error::BadResource { path: r.path.clone(), reason: "the path is listed twice".into() });
        }
        let dest = confine::make_parents(&tree, rel, &r.path)?;
        if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
            return Err(Error::BadResource { path: r.path.clone(), reason: "the upload has a directory there".into() });
        }
        placed.push((r, dest));
    }
    futures_util::stream::iter(placed)
        .map(|(r, dest)| async move {
            // The declared sizes were counted against the limit: the cached file must match.
            // The tree is scratch (it is zipped, then removed): no fsync per file.
            let reader = match store.get(Namespace::Resources, &r.sha1).await {
                Err(Error::NotFound { .. }) => {
                    return Err(Error::ResourceNotCached { sha1: r.sha1.clone(), path: r.path.clone() });
                }
                other => other?,
            };
            if tokio::fs::symlink_metadata(&dest).await.is_ok() {
                tokio::fs::remove_file(&dest).await.map_err(Error::io("replacing", &dest))?;
            }
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dest)
                .await
                .map_err(Error::io("creating", &dest))?;
            let written =
                tokio::io::copy(&mut reader.take(r.size + 1), &mut file).await.map_err(Error::io("writing", &dest))?;
            if written != r.size {
                return Err(Error::BadResource {
                    path: r.path.clone(),
                    reason: format!("size_in_bytes is {} but the cached file differs", r.size),
                });
            }
            let mode = r.mode.unwrap_or(0o644) & 0o777;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .await
                .map_err(Error::io("setting the mode of", &dest))
        })
        .buffer_unordered(TRANSFER_CONCURRENCY)
        .try_collect::<()>()
        .await?;

    let cacheable: Vec<&PathBuf> = uploaded.iter().filter(|(_, size)| rule.allows(*size)).map(|(p, _)| p).collect();
    let newly_cached = cacheable.len() as u64;
    futures_util::stream::iter(cacheable)
        .map(|path| store.put_file(Namespace::Resources, path))
        .buffer_unordered(TRANSFER_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;

    let zip_path = work.path().join("package.zip");
    {
        let (tree, zip_path) = (tree.clone(), zip_path.clone());
        blocking(move || {
            let file = std::fs::File::create(&zip_path).map_err(Error::io("creating", &zip_path))?;
            archive::create_zip(&tree, std::io::BufWriter::new(file))?;
            Ok(())
        })
        .await?;
    }
    let package = store.put_file(Namespace::Packages, &zip_path).await?;
    Ok(Assembly { package, uploaded_files: uploaded.len() as u64, cached_files: resources.len() as u64, newly_cached })
}

/// Regular files under `root` with their sizes (symlinks are not followed).
fn regular_files(root: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).map_err(Error::io("reading", &dir))? {
            let e = e.map_err(Error::io("reading", &dir))?;
            let meta = e.path().symlink_metadata().map_err(Error::io("reading", e.path()))?;
            if meta.is_dir() {
                dirs.push(e.path());
            } else if meta.is_file() {
                out.push((e.path(), meta.len()));
            }
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}
