//! Streaming files in and out of a container, helper side (`hearth container-helper
//! stream-in|stream-out`). The helper enters the container's mount namespace and then
//! chroots to the container's root, so every path, `..` and symlink resolves inside the
//! container as its processes see it, and nothing on the host is reachable. On top, every
//! tar entry is checked: no absolute paths, no `..`, nothing through a symlink out of the
//! destination, no hard link to a file outside it, only files, directories and links.
//!
//! Stream-in writes as the requested owner (its host ids, mapped the way the container's
//! user namespace maps them, as file-system ids): what it creates belongs to the owner,
//! and it may only create what the owner may, like a process of the container's. An
//! entry that is refused stops the unpacking with an error; entries before it have been
//! written (all inside the destination). Stream-out reads as host root.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, Spec};
use tar::{Archive, Builder, EntryType, Header, HeaderMode};

use crate::helper::load;
use crate::id::ContainerId;
use crate::layout::Layout;
use crate::spec::User;

/// The user the container's "nobody" is: ids outside the mapping show as this.
const OVERFLOW_ID: u32 = 65_534;

/// The container's id mappings (container id → host id).
pub(crate) struct IdMaps {
    uids: Vec<LinuxIdMapping>,
    gids: Vec<LinuxIdMapping>,
}

impl IdMaps {
    /// Ids as they are: inside the container's user namespace.
    fn identity() -> Self {
        let all = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(0u32)
            .size(u32::MAX)
            .build()
            .expect("a complete mapping");
        Self { uids: vec![all], gids: vec![all] }
    }

    pub(crate) fn to_host(maps: &[LinuxIdMapping], id: u32) -> Option<u32> {
        maps.iter()
            .find(|m| id >= m.container_id() && id - m.container_id() < m.size())
            .map(|m| m.host_id() + id - m.container_id())
    }

    fn to_container(maps: &[LinuxIdMapping], id: u32) -> u32 {
        maps.iter()
            .find(|m| id >= m.host_id() && id - m.host_id() < m.size())
            .map_or(OVERFLOW_ID, |m| m.container_id() + id - m.host_id())
    }
}

/// Enters the container: its mount namespace, then its root. Returns its id mappings.
fn enter(layout: &Layout, id: &ContainerId) -> Result<IdMaps, String> {
    let config = layout.bundle(id).join("config.json");
    let spec = Spec::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let linux = spec.linux().as_ref().ok_or("the container spec has no linux section")?;
    let mut maps = IdMaps {
        uids: linux.uid_mappings().clone().unwrap_or_default(),
        gids: linux.gid_mappings().clone().unwrap_or_default(),
    };
    let init = load(layout, id)?.pid().ok_or_else(|| format!("container {id} has no init process"))?;
    let rootless = !nix::unistd::geteuid().is_root();
    let pid = if rootless { crate::rootless::inspectable_pid(init.as_raw())? } else { init.as_raw() };
    let open = |path: String, flags: i32| -> Result<OwnedFd, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&path)
            .map_err(|e| format!("{path}: {e} (is container {id} running?)"))?;
        Ok(file.into())
    };
    use std::os::unix::fs::OpenOptionsExt;
    let root = open(format!("/proc/{pid}/root"), libc::O_DIRECTORY | libc::O_CLOEXEC)?;
    let mnt = open(format!("/proc/{pid}/ns/mnt"), libc::O_CLOEXEC)?;
    if rootless {
        // An ordinary user may join the mount namespace only from inside the container's
        // user namespace (which it owns); there, ids are the container's own.
        join_user_namespace(pid)?;
        maps = IdMaps::identity();
    }
    // SAFETY: setns with an fd this function opened; this helper is single-threaded,
    // which joining a mount namespace requires.
    if unsafe { libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
        return Err(format!("entering the mount namespace: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fchdir to a directory fd opened above.
    if unsafe { libc::fchdir(root.as_raw_fd()) } != 0 {
        return Err(format!("entering the root: {}", std::io::Error::last_os_error()));
    }
    std::os::unix::fs::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(maps)
}

/// Joins the user namespace of process `pid` (this process must be single-threaded and own
/// that namespace, as a rootless runtime's helper does). Afterwards it is root there.
pub(crate) fn join_user_namespace(pid: i32) -> Result<(), String> {
    let path = format!("/proc/{pid}/ns/user");
    let userns = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: setns with an fd just opened, in a single-threaded helper.
    if unsafe { libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) } != 0 {
        return Err(format!("joining the user namespace: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// An absolute path without `..`, as the caller gave it.
fn clean_absolute(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if p.is_absolute() && p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))) {
        Ok(p.to_path_buf())
    } else {
        Err(format!("{path:?} must be an absolute path without '..'"))
    }
}

/// Unpacks the tar on stdin into `dest` inside the container, owned by `owner`.
pub(crate) fn stream_in(layout: &Layout, id: &ContainerId, dest: &str, owner: User) -> Result<(), String> {
    let dest = clean_absolute(dest)?;
    let rootless = !nix::unistd::geteuid().is_root();
    let maps = enter(layout, id)?;
    let uid = IdMaps::to_host(&maps.uids, owner.uid).ok_or_else(|| format!("uid {} is not mapped", owner.uid))?;
    let gid = IdMaps::to_host(&maps.gids, owner.gid).ok_or_else(|| format!("gid {} is not mapped", owner.gid))?;
    become_owner(uid, gid, rootless)?;
    std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    if !std::fs::metadata(&dest).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{} is not a directory", dest.display()));
    }

    let mut archive = Archive::new(std::io::stdin().lock());
    archive.set_preserve_permissions(false); // mode bits 0o777 only: no setuid from a tar
    archive.set_preserve_ownerships(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(|e| format!("reading the tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("reading the tar: {e}"))?;
        let path = entry.path().map_err(|e| format!("entry name: {e}"))?.into_owned();
        let shown = path.display().to_string();
        let relative: PathBuf = path.components().filter(|c| !matches!(c, Component::CurDir)).collect();
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!("entry {shown:?} points outside the destination: refused"));
        }
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::Directory | EntryType::Symlink => {}
            EntryType::Link => {
                let target = entry.link_name().ok().flatten().map(|t| t.into_owned()).unwrap_or_default();
                if target.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
                    return Err(format!("hard link {shown:?} to {:?} leaves the destination: refused", target));
                }
            }
            other => return Err(format!("entry {shown:?} is a {other:?}: only files, directories and links")),
        }
        if relative.as_os_str().is_empty() {
            continue; // "./": the destination itself
        }
        // unpack_in also refuses anything whose parent resolves outside `dest` (a symlink
        // entry pointing out, then a file "through" it) and hard links out of `dest`.
        entry.unpack_in(&dest).map_err(|e| format!("entry {shown:?}: {e}"))?;
    }
    Ok(())
}

/// From here on files are created as the owner (host ids mapped from the container's),
/// with the owner's permissions: the file-system ids change (which also clears the file
/// capabilities), and the supplementary groups of host root are dropped. A rootless
/// helper (`rootless`) keeps its groups: libcontainer denies `setgroups` in a rootless
/// container's user namespace, and they are the ordinary user's own, no more than it holds.
fn become_owner(uid: u32, gid: u32, rootless: bool) -> Result<(), String> {
    // SAFETY: credential calls in this single-threaded helper; setfsuid(-1) only reads.
    unsafe {
        if !rootless && libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        libc::setfsgid(gid);
        libc::setfsuid(uid);
        if libc::setfsuid(u32::MAX) as u32 != uid || libc::setfsgid(u32::MAX) as u32 != gid {
            return Err(format!("cannot act as {uid}:{gid}"));
        }
    }
    Ok(())
}

/// Writes a tar of `path` inside the container to stdout: the entry names start with
/// the path's last component (like `tar -C $(dirname PATH) -c $(basename PATH)`), owners
/// are container ids, symlinks are kept as links. A first line `ok` (before the tar)
/// tells the server the path was found.
pub(crate) fn stream_out(layout: &Layout, id: &ContainerId, path: &str) -> Result<(), String> {
    let path = clean_absolute(path)?;
    let maps = enter(layout, id)?;
    let name = path.file_name().map(PathBuf::from).ok_or("cannot stream out /: name a file or directory")?;
    let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    out.write_all(b"ok\n").map_err(|e| e.to_string())?;
    let mut builder = Builder::new(out);
    append(&mut builder, &maps, &path, &name, &meta)?;
    let mut out = builder.into_inner().map_err(|e| format!("writing the tar: {e}"))?;
    out.flush().map_err(|e| format!("writing the tar: {e}"))
}

fn append(
    builder: &mut Builder<impl Write>,
    maps: &IdMaps,
    path: &Path,
    name: &Path,
    meta: &std::fs::Metadata,
) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    header.set_mode(meta.mode() & 0o7777); // permission bits only, not the file type
    header.set_uid(u64::from(IdMaps::to_container(&maps.uids, meta.uid())));
    header.set_gid(u64::from(IdMaps::to_container(&maps.gids, meta.gid())));
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(fail)?;
        builder.append_link(&mut header, name, target).map_err(fail)
    } else if kind.is_file() {
        let file = File::open(path).map_err(fail)?;
        builder.append_data(&mut header, name, file).map_err(fail)
    } else if kind.is_dir() {
        builder.append_data(&mut header, name, std::io::empty()).map_err(fail)?;
        let mut children: Vec<_> = std::fs::read_dir(path).map_err(fail)?.flatten().collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let meta = child.path().symlink_metadata().map_err(fail)?;
            append(builder, maps, &child.path(), &name.join(child.file_name()), &meta)?;
        }
        Ok(())
    } else {
        Ok(()) // sockets, FIFOs and devices are not content
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    #[test]
    fn ids_map_both_ways_and_unmapped_ones_are_nobody() {
        let map = vec![
            LinuxIdMappingBuilder::default().container_id(0u32).host_id(100_000u32).size(65_536u32).build().unwrap(),
        ];
        assert_eq!(IdMaps::to_host(&map, 2000), Some(102_000));
        assert_eq!(IdMaps::to_host(&map, 65_536), None);
        assert_eq!(IdMaps::to_container(&map, 102_000), 2000);
        assert_eq!(IdMaps::to_container(&map, 0), OVERFLOW_ID);
    }

    #[test]
    fn only_clean_absolute_paths() {
        assert!(clean_absolute("/home/vcap/app").is_ok());
        for bad in ["relative", "/a/../b", "", "./x"] {
            assert!(clean_absolute(bad).is_err(), "{bad:?}");
        }
    }
}
