//! Per-container root filesystems: an overlayfs mount of read-only layers with a private writable
//! upper directory, plus read-only bind mounts (the host stack's `/usr`). `destroy_rootfs`
//! unmounts everything below the container's directory before removing a file, and is safe to
//! repeat; a failed create destroys what it made.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::mounts::mounts_under;
use crate::store::remove_any;
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
}

/// A mounted root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    pub id: String,
    /// The merged directory: the container's `/`.
    pub path: PathBuf,
    /// The writable layer (what the container changed; its size is the disk usage).
    pub upper: PathBuf,
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

    /// Mounts a new root filesystem for container `id`. Blocking; needs root (or `CAP_SYS_ADMIN`).
    pub fn create_rootfs(&self, id: &str, spec: &RootfsSpec) -> Result<Rootfs> {
        let home = self.rootfs_home(id)?;
        for layer in &spec.layers {
            if !self.has_layer(layer) {
                return Err(Error::MissingLayer(layer.clone()));
            }
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
        let (upper, work, merged) = (home.join("upper"), home.join("work"), home.join("merged"));
        for dir in [&upper, &work, &merged] {
            fs::DirBuilder::new().mode(0o755).create(dir).map_err(Error::io(dir))?;
        }
        let mut lower: Vec<PathBuf> = spec.layers.iter().rev().map(|l| self.layer_dir(l)).collect();
        if lower.is_empty() {
            let empty = home.join("empty");
            fs::DirBuilder::new().mode(0o755).create(&empty).map_err(Error::io(&empty))?;
            lower.push(empty);
        }
        let lower: Vec<&str> = lower.iter().map(|p| p.to_str().expect("store paths are UTF-8")).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},index=off",
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
        Ok(Rootfs { id: id.to_string(), path: merged, upper })
    }

    /// Unmounts and removes container `id`'s root filesystem. Idempotent: an unknown id is fine.
    pub fn destroy_rootfs(&self, id: &str) -> Result<()> {
        let home = self.rootfs_home(id)?;
        if fs::symlink_metadata(&home).is_err() {
            return Ok(());
        }
        for mount_point in mounts_under(&home)? {
            match rustix::mount::unmount(&mount_point, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
                Err(source) => return Err(Error::Mount { op: "unmount", path: mount_point, source }),
            }
        }
        if let Some(path) = mounts_under(&home)?.into_iter().next() {
            return Err(Error::StillMounted { path });
        }
        remove_any(&home)
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
