//! Disk limits on a root filesystem's writable layer.
//!
//! A limited root filesystem keeps its overlay `upper/` and `work/` on a file system of its own:
//! a sparse ext4 image (`rootfs/<id>/disk.img`, a copy of a template `mkfs.ext4` made once per
//! size under `disk-templates/`) attached to a loop device
//! with autoclear and mounted at `rootfs/<id>/disk/`. A write past the limit fails with ENOSPC
//! whoever writes (container root included), other root filesystems are untouched, and usage is
//! one `statvfs`. The loop device goes away when the file system is unmounted, so destroy (which
//! unmounts everything under the root filesystem's directory) releases it.
//!
//! Why not a shared file system with project quotas (GrootFS's XFS): this kernel has neither
//! `CONFIG_XFS_QUOTA` nor the ext4 quota formats, and btrfs qgroups leave stale qgroups behind
//! until the cleaner thread catches up (measured; see ARCHITECTURE.md).
//!
//! When the loop device cannot be made (no `/dev/loop-control`, no `mkfs.ext4`, a container
//! without the capability), the upper directory stays on the store's file system: usage is still
//! reported (by walking the upper directory) and the limit is recorded as not enforced, with a
//! warning in the log.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::MountFlags;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The smallest limit: ext4 needs room for its own metadata.
pub const MIN_DISK_LIMIT: u64 = 4 << 20;

/// How a writable layer's size is limited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DiskLimitBackend {
    /// A loop-mounted ext4 image per limited root filesystem (falls back to `Unenforced`).
    #[default]
    LoopExt4,
    /// Limits are recorded and reported but not enforced.
    Unenforced,
}

/// A root filesystem's disk limit as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiskLimit {
    Unlimited,
    /// Writes past `bytes` fail with ENOSPC.
    Enforced {
        bytes: u64,
    },
    /// Asked for, but the store could not enforce it; `reason` says why.
    NotEnforced {
        bytes: u64,
        reason: String,
    },
}

impl DiskLimit {
    /// The limit asked for, enforced or not.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            DiskLimit::Unlimited => None,
            DiskLimit::Enforced { bytes } | DiskLimit::NotEnforced { bytes, .. } => Some(*bytes),
        }
    }
}

/// What a root filesystem's writable layer holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Bytes the container wrote (allocated blocks, so a sparse file counts what it really uses).
    pub bytes: u64,
    pub limit: DiskLimit,
}

/// Where a root filesystem's `upper/` and `work/` live, and how to read its usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WritableLayer {
    pub(crate) limit: DiskLimit,
    /// Blocks the empty file system already used (ext4's own metadata), subtracted from usage.
    pub(crate) baseline: u64,
}

/// Makes the writable layer's home for a root filesystem in `home`: its own ext4 file system
/// when limited and possible, else `home` itself. Returns the directory to hold `upper/` and
/// `work/`. On error the caller destroys `home` (which unmounts whatever was mounted).
pub(crate) fn prepare(
    templates: &Path,
    home: &Path,
    limit: Option<u64>,
    backend: DiskLimitBackend,
    id: &str,
) -> Result<(PathBuf, WritableLayer)> {
    let Some(bytes) = limit else {
        return Ok((home.to_path_buf(), WritableLayer { limit: DiskLimit::Unlimited, baseline: 0 }));
    };
    if bytes < MIN_DISK_LIMIT {
        return Err(Error::BadDiskLimit { bytes, min: MIN_DISK_LIMIT });
    }
    let reason = match backend {
        DiskLimitBackend::Unenforced => "the store is configured not to enforce disk limits".to_string(),
        DiskLimitBackend::LoopExt4 => {
            let disk = home.join("disk");
            match own_file_system(templates, home, &disk, bytes) {
                Ok(baseline) => return Ok((disk, WritableLayer { limit: DiskLimit::Enforced { bytes }, baseline })),
                Err(e) => {
                    // Nothing of the attempt may stay: unmount (which detaches the loop device) and remove.
                    let _ = rustix::mount::unmount(&disk, rustix::mount::UnmountFlags::DETACH);
                    let _ = fs::remove_dir(&disk);
                    let _ = fs::remove_file(home.join("disk.img"));
                    e.to_string()
                }
            }
        }
    };
    if backend == DiskLimitBackend::Unenforced {
        // Chosen by whoever configured the store, who says so once.
        tracing::debug!(rootfs = id, limit = bytes, %reason, "disk limit not enforced");
    } else {
        tracing::warn!(rootfs = id, limit = bytes, %reason, "disk limit NOT enforced; usage is still reported");
    }
    Ok((home.to_path_buf(), WritableLayer { limit: DiskLimit::NotEnforced { bytes, reason }, baseline: 0 }))
}

/// Creates `home/disk.img` sized so about `bytes` are usable (a sparse copy of a formatted
/// template of that size), and mounts it at `disk` through a fresh loop device. Returns the bytes
/// the empty file system uses.
fn own_file_system(templates: &Path, home: &Path, disk: &Path, bytes: u64) -> Result<u64> {
    let image = home.join("disk.img");
    // ext4's inode tables and group descriptors take ~4-10% of a small file system.
    let size = bytes + bytes / 16 + (2 << 20);
    let template = template(templates, size)?;
    copy_sparse(&template, &image)?;
    fs::DirBuilder::new().mode(0o755).create(disk).map_err(Error::io(disk))?;
    let image_file = fs::OpenOptions::new().read(true).write(true).open(&image).map_err(Error::io(&image))?;
    let device = loop_device::attach(&image_file)?;
    // The device stays open until the mount holds it; autoclear detaches it when the mount goes.
    let mounted = rustix::mount::mount(&device.path, disk, "ext4", MountFlags::NODEV | MountFlags::NOSUID, c"discard")
        .map_err(|source| Error::Mount { op: "mount ext4 on", path: disk.to_path_buf(), source });
    drop(device);
    mounted?;
    used_bytes(disk)
}

/// A formatted, empty ext4 image of `size` bytes under `templates/`, made once per size (copying
/// its few written blocks is much cheaper than running `mkfs.ext4` for every root filesystem).
/// The copies share the template's UUID, which ext4 does not mind.
fn template(templates: &Path, size: u64) -> Result<PathBuf> {
    let path = templates.join(format!("ext4-{size}.img"));
    if path.exists() {
        return Ok(path);
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(templates).map_err(Error::io(templates))?;
    let staging = templates.join(format!(".ext4-{size}-{}-{:?}.tmp", std::process::id(), std::thread::current().id()));
    let made = (|| {
        let file = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&staging);
        file.and_then(|f| f.set_len(size)).map_err(Error::io(&staging))?;
        let out = Command::new("mkfs.ext4")
            // No journal, reserve, resize room or backup superblocks: a scratch file system that
            // dies with its container, with as few written blocks as possible.
            .args(["-q", "-F", "-m", "0", "-O", "^has_journal,^resize_inode,sparse_super2"])
            .args(["-E", "nodiscard,lazy_itable_init=1,num_backup_sb=0", "--"])
            .arg(&staging)
            .output()
            .map_err(|e| Error::DiskSetup(format!("cannot run mkfs.ext4: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(Error::DiskSetup(format!("mkfs.ext4 failed: {}", stderr.trim())));
        }
        fs::rename(&staging, &path).map_err(Error::io(&path))
    })();
    if made.is_err() {
        let _ = fs::remove_file(&staging);
    }
    made.map(|()| path)
}

/// Copies `from` to a new file `to`, only the extents that hold data (the rest stays a hole).
fn copy_sparse(from: &Path, to: &Path) -> Result<()> {
    use rustix::fs::SeekFrom;
    let source = File::open(from).map_err(Error::io(from))?;
    let size = source.metadata().map_err(Error::io(from))?.len();
    let target = fs::OpenOptions::new().write(true).create_new(true).open(to).map_err(Error::io(to))?;
    target.set_len(size).map_err(Error::io(to))?;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustix::io::Errno| Error::Io { path, source: std::io::Error::from(e) }
    };
    let mut offset = 0;
    while offset < size {
        let start = match rustix::fs::seek(&source, SeekFrom::Data(offset)) {
            Ok(start) => start,
            Err(rustix::io::Errno::NXIO) => break, // only a hole is left
            Err(e) => return Err(io_err(from)(e)),
        };
        let end = rustix::fs::seek(&source, SeekFrom::Hole(start)).map_err(io_err(from))?;
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end {
            let len = usize::try_from(end - off_in).unwrap_or(usize::MAX);
            let copied = rustix::fs::copy_file_range(&source, Some(&mut off_in), &target, Some(&mut off_out), len)
                .map_err(io_err(to))?;
            if copied == 0 {
                return Err(Error::DiskSetup(format!("{} shrank while being copied", from.display())));
            }
        }
        offset = end;
    }
    Ok(())
}

/// Bytes in use on the file system holding `path`.
fn used_bytes(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: std::io::Error::from(e) })?;
    Ok((st.f_blocks - st.f_bfree) * st.f_frsize)
}

/// Bytes used by a writable layer: one `statvfs` on its own file system, else a walk of `upper`.
pub(crate) fn usage(layer: &WritableLayer, upper: &Path) -> Result<u64> {
    match layer.limit {
        DiskLimit::Enforced { .. } => {
            let disk = upper.parent().expect("upper sits in its disk");
            let home = disk.parent().expect("the disk sits in the root filesystem's directory");
            let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).map_err(Error::io(p));
            if dev(disk)? == dev(home)? {
                // Not mounted (after a reboot): statvfs would describe the store's own disk.
                return Err(Error::DiskSetup(format!("{} is not mounted", disk.display())));
            }
            Ok(used_bytes(disk)?.saturating_sub(layer.baseline))
        }
        DiskLimit::Unlimited | DiskLimit::NotEnforced { .. } => allocated_under(upper),
    }
}

/// Allocated bytes of everything under `dir` on its own device (symlinks not followed).
fn allocated_under(dir: &Path) -> Result<u64> {
    let top = fs::symlink_metadata(dir).map_err(Error::io(dir))?;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            // A rootless store's user may not list a container user's private directory: its
            // size is left out (only a container's own ids could see it).
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && path != dir => continue,
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io(&path))?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(Error::Io { path: entry.path(), source: e }),
            };
            total += meta.blocks() * 512;
            if meta.is_dir() && meta.dev() == top.dev() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Loop devices through the kernel's ioctls (`linux/loop.h`), so no `losetup` is needed.
mod loop_device {
    use super::*;

    const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
    const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;

    #[repr(C)]
    struct LoopInfo64 {
        device: u64,
        inode: u64,
        rdevice: u64,
        offset: u64,
        sizelimit: u64,
        number: u32,
        encrypt_type: u32,
        encrypt_key_size: u32,
        flags: u32,
        file_name: [u8; 64],
        crypt_name: [u8; 64],
        encrypt_key: [u8; 32],
        init: [u64; 2],
    }

    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }

    /// An attached loop device, open; it detaches by itself once unused (autoclear).
    pub(super) struct Device {
        pub(super) path: PathBuf,
        _file: File,
    }

    /// Attaches `backing` to a free loop device (retrying when another process takes it first).
    pub(super) fn attach(backing: &File) -> Result<Device> {
        let control_path = Path::new("/dev/loop-control");
        let control = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(control_path)
            .map_err(|e| Error::DiskSetup(format!("cannot open {}: {e}", control_path.display())))?;
        let mut last = String::new();
        for _ in 0..8 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
            let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
            if n < 0 {
                return Err(Error::DiskSetup(format!("no free loop device: {}", std::io::Error::last_os_error())));
            }
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let file = match fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                Err(e) => {
                    last = format!("{}: {e}", path.display());
                    continue;
                }
            };
            let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
            info.flags = LO_FLAGS_AUTOCLEAR;
            let config = LoopConfig { fd: backing.as_raw_fd() as u32, block_size: 0, info, reserved: [0; 8] };
            // SAFETY: `config` is a valid `struct loop_config` that outlives the call.
            if unsafe { libc::ioctl(file.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) } == 0 {
                return Ok(Device { path, _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EBUSY) {
                return Err(Error::DiskSetup(format!("LOOP_CONFIGURE on {}: {err}", path.display())));
            }
            last = format!("{} was taken meanwhile", path.display());
        }
        Err(Error::DiskSetup(format!("no loop device could be attached ({last})")))
    }
}
