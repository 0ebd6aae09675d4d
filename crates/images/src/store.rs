//! The content-addressed store on disk: blobs, unpacked layers, image records. Everything appears
//! by an atomic rename from `tmp/`, so a reader never sees half a layer.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::extract::{OverlayXattrs, UnpackReport, unpack_layer, unpack_tar_with};
use crate::metrics::Counters;
use crate::userns::{UserNamespace, remove_tree};
use crate::{Digest, DiskLimitBackend, Error, Result, RuntimeConfig};

/// A handle on one store directory; cheap to clone, shared by every pull and root filesystem.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// One lock per layer blob being fetched: the first pull downloads, the others wait and find it.
    inflight: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    seq: AtomicU64,
    counters: Counters,
    config: StoreConfig,
    /// Layers a pull or a root filesystem being made holds on to; `gc` leaves them alone.
    leases: Mutex<HashMap<Digest, usize>>,
}

/// How a store behaves; `Default` is what `Store::open` uses.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bytes of stored layers above which unused layers are collected (after each pull, and by
    /// `gc`). `None`: only an explicit `gc` collects, and then every unused layer.
    pub cache_threshold: Option<u64>,
    /// A layer used (pulled, found in the store, or mounted) more recently than this is kept, so
    /// the caller of a pull has time to make its root filesystem.
    pub gc_grace: Duration,
    /// How root filesystems' disk limits are enforced.
    pub disk_limits: DiskLimitBackend,
    /// `Some` for a store kept by an ordinary user (rootless mode): layers are unpacked and
    /// trees removed in this user namespace (`userns`), and root filesystems are not
    /// mounted on the host but handed to the container to mount (`Rootfs::overlay`).
    pub user_namespace: Option<UserNamespace>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_threshold: None,
            gc_grace: Duration::from_secs(300),
            disk_limits: DiskLimitBackend::LoopExt4,
            user_namespace: None,
        }
    }
}

/// What the store knows about one unpacked layer (`layers/sha256/<hex>/layer.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the uncompressed tar: the layer's key.
    pub diff_id: Digest,
    /// Digest of the blob it was unpacked from, when it came from a registry.
    pub compressed: Option<Digest>,
    pub entries: u64,
    pub bytes: u64,
    pub dropped_devices: Vec<String>,
}

/// One layer as an image names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A pulled image (`images/<sha256 of the reference>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The reference as pulled, fully qualified (`registry/repository:tag` or `@digest`).
    pub reference: String,
    /// The platform manifest's digest (the image id a user can pull by).
    pub manifest_digest: Digest,
    /// The index or manifest list it was chosen from, if any.
    pub index_digest: Option<Digest>,
    pub config_digest: Digest,
    /// Bottom to top.
    pub layers: Vec<ImageLayer>,
    pub runtime: RuntimeConfig,
}

impl ImageRecord {
    /// The layer keys, bottom to top.
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
}

impl Store {
    /// Opens (creating) a store at `root` and empties `tmp/` of what a crash left, keeping
    /// partial downloads so they resume.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(root, StoreConfig::default())
    }

    /// `open` with a configuration (cache threshold, gc grace, disk limit backend).
    pub fn open_with(root: impl Into<PathBuf>, config: StoreConfig) -> Result<Self> {
        let root: PathBuf = root.into();
        let root =
            if root.is_absolute() { root } else { std::env::current_dir().map_err(Error::io(&root))?.join(root) };
        if root.to_str().is_none_or(|s| s.contains([',', ':', '\\'])) {
            return Err(Error::UnusablePath(root));
        }
        for dir in ["blobs/sha256", "layers/sha256", "images", "pins", "rootfs", "tmp/downloads"] {
            let path = root.join(dir);
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&path).map_err(Error::io(&path))?;
        }
        // Containers reach their root filesystem from inside a user namespace, as "others":
        // the path to it must be searchable (not listable).
        for dir in [root.clone(), root.join("rootfs")] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).map_err(Error::io(&dir))?;
        }
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(Error::io(&tmp))? {
            let path = entry.map_err(Error::io(&tmp))?.path();
            if path.file_name().is_some_and(|n| n != "downloads") {
                remove_tree(config.user_namespace.as_ref(), &path)?;
            }
        }
        // A template `mkfs.ext4` was making when the process died (see `disk`).
        if let Ok(entries) = fs::read_dir(root.join("disk-templates")) {
            for path in entries.flatten().map(|e| e.path()) {
                if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                    remove_any(&path)?;
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                inflight: Mutex::default(),
                seq: AtomicU64::new(0),
                counters: Counters::default(),
                config,
                leases: Mutex::default(),
            }),
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The unpacked content of a layer (an overlay lower directory).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layer_home(diff_id).join("diff")
    }

    pub(crate) fn layer_home(&self, diff_id: &Digest) -> PathBuf {
        self.inner.root.join("layers/sha256").join(diff_id.hex())
    }

    /// Whether a layer is stored (complete and verified: it is only ever renamed into place).
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_home(diff_id).is_dir()
    }

    /// A stored layer's record.
    pub fn layer(&self, diff_id: &Digest) -> Result<LayerRecord> {
        let path = self.layer_home(diff_id).join("layer.json");
        match fs::read(&path) {
            Ok(bytes) => parse_json(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingLayer(diff_id.clone())),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Every stored layer's diff id.
    pub fn layers(&self) -> Result<Vec<Digest>> {
        let dir = self.inner.root.join("layers/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let name = entry.map_err(Error::io(&dir))?.file_name();
            if let Ok(d) = Digest::parse(&format!("sha256:{}", name.to_string_lossy())) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The record of a pulled reference (as given to the pull, or fully qualified).
    pub fn image(&self, reference: &str) -> Result<ImageRecord> {
        let canonical = crate::pull::canonical_reference(reference)?;
        let path = self.image_path(&canonical);
        match fs::read(&path) {
            Ok(bytes) => parse_json(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingImage(reference.to_string())),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Every image record.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.inner.root.join("images");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let path = entry.map_err(Error::io(&dir))?.path();
            let bytes = fs::read(&path).map_err(Error::io(&path))?;
            out.push(parse_json::<ImageRecord>(&path, &bytes)?);
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    fn image_path(&self, canonical_reference: &str) -> PathBuf {
        self.inner.root.join("images").join(format!("{}.json", Digest::of(canonical_reference.as_bytes()).hex()))
    }

    pub(crate) fn put_image(&self, record: &ImageRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        self.write_atomic(&self.image_path(&record.reference), &bytes)
    }

    /// A stored manifest or config blob.
    pub fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.inner.root.join("blobs/sha256").join(digest.hex());
        fs::read(&path).map_err(Error::io(path))
    }

    /// Stores verified bytes under their digest.
    pub(crate) fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.inner.root.join("blobs/sha256").join(digest.hex());
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Removes the record of a pulled reference; an unknown one is fine.
    pub fn remove_image(&self, reference: &str) -> Result<()> {
        remove_any(&self.image_path(&crate::pull::canonical_reference(reference)?))
    }

    /// Replaces `path` by a rename, so a reader sees the old or the new bytes, and syncs them.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.replace_file(path, bytes, true)
    }

    /// `write_atomic`, optionally without the sync (for state that cannot outlive a reboot anyway).
    pub(crate) fn replace_file(&self, path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
        let tmp = self.tmp_path("write");
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(Error::io(&tmp))?;
        file.write_all(bytes).and_then(|_| if sync { file.sync_all() } else { Ok(()) }).map_err(Error::io(&tmp))?;
        fs::rename(&tmp, path).map_err(Error::io(path))
    }

    /// A fresh path under `tmp/`.
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        self.inner.root.join("tmp").join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Where a layer blob is downloaded to (kept across failures so the download resumes).
    pub(crate) fn download_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("tmp/downloads").join(digest.hex())
    }

    /// Adds a layer from a tarball (plain, gzip or zstd), e.g. a droplet. Blocking.
    pub fn import_layer(&self, tarball: impl Read) -> Result<LayerRecord> {
        let staging = self.tmp_path("import");
        let result = self.unpack_and_install(tarball, &staging, None, None);
        let _ = self.remove_tree(&staging);
        result
    }

    /// Unpacks into `staging/diff`, checks the diff id if one is expected, and renames the
    /// layer into place. The caller removes `staging` whatever happens.
    pub(crate) fn unpack_and_install(
        &self,
        tarball: impl Read,
        staging: &Path,
        expected: Option<&Digest>,
        compressed: Option<&Digest>,
    ) -> Result<LayerRecord> {
        let record = self.unpack_staged(tarball, staging, expected, compressed)?;
        self.install_staged(staging, record)
    }

    /// Unpacks a layer into `staging` and checks its diff id, without adding it to the store.
    pub(crate) fn unpack_staged(
        &self,
        tarball: impl Read,
        staging: &Path,
        expected: Option<&Digest>,
        compressed: Option<&Digest>,
    ) -> Result<LayerRecord> {
        self.staged(staging, expected, compressed, |diff| match &self.config().user_namespace {
            Some(namespace) => namespace.unpack(tarball, diff),
            None => unpack_layer(tarball, diff),
        })
    }

    /// [`Store::unpack_staged`] for an uncompressed tar in memory, written from where it lies.
    pub(crate) fn unpack_staged_tar(
        &self,
        tar: &[u8],
        staging: &Path,
        expected: Option<&Digest>,
        compressed: Option<&Digest>,
    ) -> Result<LayerRecord> {
        self.staged(staging, expected, compressed, |diff| match &self.config().user_namespace {
            Some(namespace) => namespace.unpack(tar, diff),
            None => unpack_tar_with(tar, diff, OverlayXattrs::Trusted),
        })
    }

    /// Makes `staging/diff`, has `unpack` fill it, checks the diff id if one is expected and
    /// writes the layer's record beside it.
    fn staged(
        &self,
        staging: &Path,
        expected: Option<&Digest>,
        compressed: Option<&Digest>,
        unpack: impl FnOnce(&Path) -> Result<UnpackReport>,
    ) -> Result<LayerRecord> {
        let diff = staging.join("diff");
        fs::DirBuilder::new().recursive(true).mode(0o755).create(&diff).map_err(Error::io(&diff))?;
        let report = unpack(&diff)?;
        if let Some(expected) = expected
            && *expected != report.diff_id
        {
            return Err(Error::DigestMismatch {
                what: format!("uncompressed layer {}", compressed.unwrap_or(expected)),
                expected: expected.clone(),
                actual: report.diff_id,
            });
        }
        let record = LayerRecord {
            diff_id: report.diff_id.clone(),
            compressed: compressed.cloned(),
            entries: report.entries,
            bytes: report.bytes,
            dropped_devices: report.dropped_devices,
        };
        let json = staging.join("layer.json");
        fs::write(&json, serde_json::to_vec_pretty(&record).expect("records serialise")).map_err(Error::io(&json))?;
        Ok(record)
    }

    /// Adds a layer [`Store::unpack_staged`] left in `staging` to the store.
    pub(crate) fn install_staged(&self, staging: &Path, record: LayerRecord) -> Result<LayerRecord> {
        let home = self.layer_home(&record.diff_id);
        match fs::rename(staging, &home) {
            Ok(()) => Ok(record),
            // Someone else stored the same content first: theirs is as good as ours.
            Err(_) if self.has_layer(&record.diff_id) => Ok(record),
            Err(e) => Err(Error::Io { path: home, source: e }),
        }
    }

    /// Held while a layer blob is fetched, so one process fetches a blob once.
    pub(crate) async fn lock_layer(&self, blob: &Digest) -> LayerGuard {
        let lock = {
            let mut inflight = self.inner.inflight.lock().expect("not poisoned");
            inflight.entry(blob.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        LayerGuard { store: self.clone(), blob: blob.clone(), lock, _guard: guard }
    }

    /// Removes a file or tree the store made (layers and writable layers may hold files of
    /// container ids: a rootless store removes them in its user namespace).
    pub(crate) fn remove_tree(&self, path: &Path) -> Result<()> {
        remove_tree(self.config().user_namespace.as_ref(), path)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn inner_leases(&self) -> &Mutex<HashMap<Digest, usize>> {
        &self.inner.leases
    }
}

/// Releases a layer's in-flight lock and forgets it when nobody else waits.
pub(crate) struct LayerGuard {
    store: Store,
    blob: Digest,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for LayerGuard {
    fn drop(&mut self) {
        let mut inflight = self.store.inner.inflight.lock().expect("not poisoned");
        // Ours, the map's, and the guard's own clone: nobody else is waiting.
        if Arc::strong_count(&self.lock) <= 3 {
            inflight.remove(&self.blob);
        }
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Malformed { what: path.display().to_string(), reason: e.to_string() })
}

/// Removes a file or a directory tree; a missing path is fine.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(Error::io(path))
}
