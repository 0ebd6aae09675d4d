//! Per-container root filesystems: an overlayfs mount of read-only layers with a private writable
//! upper directory, plus read-only bind mounts (the host stack's `/usr`). `destroy_rootfs`
//! unmounts everything below the container's directory before removing a file, and is safe to
//! repeat; a failed create destroys what it made.
//!
//! The overlay is mounted `volatile`: the writable layer is scratch space that dies with its
//! container, so neither a container's `fsync` nor the unmount flushes the host file system
//! (measured: a plain unmount synced the whole host disk, 30-190 ms on a busy machine). With a
//! disk limit the upper directory sits on the root filesystem's own file system (`disk`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use std::sync::atomic::Ordering;

use rustix::mount::{MountFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

use crate::disk::{self, DiskLimit, DiskUsage, MIN_DISK_LIMIT, WritableLayer};
use crate::mounts::mounts_under;
use crate::store::parse_json;
use crate::{Digest, Error, Result, Store};

/// The page the kernel copies mount options into; longer option strings are refused.
const MAX_MOUNT_DATA: usize = 4095;

/// A host directory mounted read-only at `target` (absolute, inside the container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyBind {
    pub source: PathBuf,
    pub target: PathBuf,
}

/// What a root filesystem is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsSpec {
    /// Stored layers, bottom to top (a stack's layers, then e.g. a droplet layer).
    pub layers: Vec<Digest>,
    pub binds: Vec<ReadOnlyBind>,
    /// Bytes the container may write to its writable layer; `None` is unlimited.
    pub disk_limit: Option<u64>,
}

/// A mounted root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    pub id: String,
    /// The merged directory: the container's `/`.
    pub path: PathBuf,
    /// The writable layer (what the container changed; its size is the disk usage).
    pub upper: PathBuf,
    pub disk_limit: DiskLimit,
    /// `Some` when the store is rootless: nothing is mounted on the host; the container
    /// mounts this overlay on `path` (an empty directory) inside its own user and mount
    /// namespaces, then these binds on it.
    pub overlay: Option<UnmountedOverlay>,
}

/// A root filesystem for its container to mount (rootless mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmountedOverlay {
    /// Read-only layers, top first (overlayfs' `lowerdir` order).
    pub lower: Vec<PathBuf>,
    /// Overlayfs' work directory, beside `Rootfs::upper`.
    pub work: PathBuf,
    pub binds: Vec<ReadOnlyBind>,
}

/// `rootfs/<id>/rootfs.json`: what a root filesystem uses, written before it is mounted (so
/// `gc` sees its layers as in use) and read back after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootfsRecord {
    pub(crate) layers: Vec<Digest>,
    pub(crate) upper: PathBuf,
    pub(crate) writable: WritableLayer,
}

impl Store {
    fn rootfs_home(&self, id: &str) -> Result<PathBuf> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && !id.starts_with('.')
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(Error::BadRootfsId(id.to_string()));
        }
        Ok(self.root().join("rootfs").join(id))
    }

    /// Mounts a new root filesystem for container `id`. Blocking; needs root (or `CAP_SYS_ADMIN`)
    /// — a rootless store makes it ready for the container to mount (`Rootfs::overlay`).
    pub fn create_rootfs(&self, id: &str, spec: &RootfsSpec) -> Result<Rootfs> {
        let home = self.rootfs_home(id)?;
        // Held until the record names the layers, so `gc` cannot take them meanwhile.
        let _lease = self.lease(&spec.layers);
        self.counters().rootfs_requests.fetch_add(1, Ordering::Relaxed);
        for layer in &spec.layers {
            if !self.has_layer(layer) {
                self.counters().rootfs_misses.fetch_add(1, Ordering::Relaxed);
                return Err(Error::MissingLayer(layer.clone()));
            }
        }
        if let Some(bytes) = spec.disk_limit
            && bytes < MIN_DISK_LIMIT
        {
            return Err(Error::BadDiskLimit { bytes, min: MIN_DISK_LIMIT });
        }
        // 0711: the container's user namespace must traverse it to reach `merged/`.
        match fs::DirBuilder::new().mode(0o711).create(&home) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Error::RootfsExists(id.to_string())),
            Err(e) => return Err(Error::Io { path: home, source: e }),
        }
        let made = self.mount_rootfs(id, &home, spec);
        if made.is_err() {
            let _ = self.destroy_rootfs(id);
        }
        made
    }

    fn mount_rootfs(&self, id: &str, home: &Path, spec: &RootfsSpec) -> Result<Rootfs> {
        let (writable_home, writable) =
            disk::prepare(&self.root().join("disk-templates"), home, spec.disk_limit, self.config().disk_limits, id)?;
        let (upper, work, merged) = (writable_home.join("upper"), writable_home.join("work"), home.join("merged"));
        let record = RootfsRecord { layers: spec.layers.clone(), upper: upper.clone(), writable };
        let json = home.join("rootfs.json");
        // Replaced by a rename: `gc` may read it at any moment. Mounts do not outlive a reboot, so no sync.
        self.replace_file(&json, &serde_json::to_vec_pretty(&record).expect("records serialise"), false)?;
        for layer in &spec.layers {
            self.touch_layer(layer);
        }
        for dir in [&upper, &work, &merged] {
            fs::DirBuilder::new().mode(0o755).create(dir).map_err(Error::io(dir))?;
        }
        let mut lower: Vec<PathBuf> = spec.layers.iter().rev().map(|l| self.layer_dir(l)).collect();
        if lower.is_empty() {
            let empty = home.join("empty");
            fs::DirBuilder::new().mode(0o755).create(&empty).map_err(Error::io(&empty))?;
            lower.push(empty);
        }
        if self.config().user_namespace.is_some() {
            let overlay = UnmountedOverlay { lower, work, binds: spec.binds.clone() };
            let limit = record.writable.limit;
            return Ok(Rootfs { id: id.to_string(), path: merged, upper, disk_limit: limit, overlay: Some(overlay) });
        }
        let lower: Vec<&str> = lower.iter().map(|p| p.to_str().expect("store paths are UTF-8")).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},index=off,volatile",
            lower.join(":"),
            upper.to_str().expect("store paths are UTF-8"),
            work.to_str().expect("store paths are UTF-8"),
        );
        if data.len() > MAX_MOUNT_DATA {
            return Err(Error::Malformed {
                what: format!("root filesystem {id}"),
                reason: format!("{} layers do not fit in one overlay mount", spec.layers.len()),
            });
        }
        let data = CString::new(data).expect("no NUL in store paths");
        rustix::mount::mount("overlay", &merged, "overlay", MountFlags::NODEV, data.as_c_str())
            .map_err(|source| Error::Mount { op: "mount overlay on", path: merged.clone(), source })?;
        for bind in &spec.binds {
            let target = mount_point_inside(&merged, &bind.target)?;
            rustix::mount::mount_bind(&bind.source, &target).map_err(|source| Error::Mount {
                op: "bind-mount",
                path: target.clone(),
                source,
            })?;
            let flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
            rustix::mount::mount_remount(&target, flags, "").map_err(|source| Error::Mount {
                op: "remount read-only",
                path: target.clone(),
                source,
            })?;
        }
        Ok(Rootfs { id: id.to_string(), path: merged, upper, disk_limit: record.writable.limit, overlay: None })
    }

    /// Unmounts and removes container `id`'s root filesystem. Idempotent: an unknown id is fine.
    pub fn destroy_rootfs(&self, id: &str) -> Result<()> {
        let home = self.rootfs_home(id)?;
        if fs::symlink_metadata(&home).is_err() {
            return Ok(());
        }
        for mount_point in mounts_under(&home)? {
            // A plain unmount releases a writable layer's file system (and so its loop device) at
            // once; a mount still in use is detached instead and goes when its last user does.
            let result = match rustix::mount::unmount(&mount_point, UnmountFlags::NOFOLLOW) {
                Err(rustix::io::Errno::BUSY) => {
                    rustix::mount::unmount(&mount_point, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
                }
                other => other,
            };
            match result {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
                Err(source) => return Err(Error::Mount { op: "unmount", path: mount_point, source }),
            }
        }
        if let Some(path) = mounts_under(&home)?.into_iter().next() {
            return Err(Error::StillMounted { path });
        }
        self.remove_tree(&home)
    }

    /// What root filesystem `id`'s writable layer holds now, and its limit. Cheap when the limit
    /// is enforced (one `statvfs`); otherwise it walks the upper directory.
    pub fn disk_usage(&self, id: &str) -> Result<DiskUsage> {
        let record = self.rootfs_record(id)?;
        Ok(DiskUsage { bytes: disk::usage(&record.writable, &record.upper)?, limit: record.writable.limit })
    }

    /// The record of root filesystem `id`.
    pub(crate) fn rootfs_record(&self, id: &str) -> Result<RootfsRecord> {
        let path = self.rootfs_home(id)?.join("rootfs.json");
        match fs::read(&path) {
            Ok(bytes) => parse_json(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingRootfs(id.to_string())),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// The ids of every root filesystem on disk (to find orphans after a restart).
    pub fn rootfs_ids(&self) -> Result<Vec<String>> {
        let dir = self.root().join("rootfs");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            ids.push(entry.map_err(Error::io(&dir))?.file_name().to_string_lossy().into_owned());
        }
        ids.sort();
        Ok(ids)
    }
}

/// `target` (absolute, in the container) as a directory under `merged`, created if missing,
/// never reached through a symlink (an image's `usr -> /` must not send a bind mount to the host).
fn mount_point_inside(merged: &Path, target: &Path) -> Result<PathBuf> {
    let mut path = merged.to_path_buf();
    for component in target.components() {
        match component {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(c) => path.push(c),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Malformed {
                    what: format!("bind target {}", target.display()),
                    reason: "not a plain absolute path".into(),
                });
            }
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Malformed {
                    what: format!("bind target {}", target.display()),
                    reason: format!("{} is not a directory in the image", path.display()),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o755).create(&path).map_err(Error::io(&path))?
            }
            Err(e) => return Err(Error::Io { path, source: e }),
        }
    }
    Ok(path)
}
