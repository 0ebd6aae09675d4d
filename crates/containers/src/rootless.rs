//! Rootless mode: a runtime run by an ordinary user. Its containers' user namespaces map
//! container root to the user itself and every other container id into the user's
//! subordinate range (`/etc/subuid`, `/etc/subgid`; libcontainer writes the maps with the
//! setuid `newuidmap`/`newgidmap`, Debian's `uidmap`). Its state lives under the user's own
//! directories, its containers get user-mode networking (`usermode`), and cgroups are used
//! only where the user may write them.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::oci::{IdMap, Owner};

/// One line of `/etc/subuid` or `/etc/subgid`: `NAME_OR_ID:START:COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubordinateRange {
    pub start: u32,
    pub count: u32,
}

/// The first range in `text` (the contents of `/etc/subuid` or `/etc/subgid`) that names
/// the user by `name` or by numeric `id`. Malformed lines are skipped, like shadow-utils
/// does.
pub fn subordinate_range(text: &str, name: &str, id: u32) -> Option<SubordinateRange> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().splitn(3, ':');
        let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        let ours = who == name || who.parse::<u32>().is_ok_and(|n| n == id);
        let range = SubordinateRange { start: start.parse().ok()?, count: count.parse().ok()? };
        (ours && range.count > 0 && range.start.checked_add(range.count).is_some()).then_some(range)
    })
}

/// Whether this process runs as an ordinary user (effective uid not 0).
pub fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The id map of a rootless runtime run by the current (effective) user, from the system's
/// `/etc/subuid` and `/etc/subgid`.
pub fn current_user_id_map() -> Result<IdMap, Error> {
    id_map_for_current_user(Path::new("/etc/subuid"), Path::new("/etc/subgid"))
}

fn id_map_for_current_user(subuid: &Path, subgid: &Path) -> Result<IdMap, Error> {
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let read = |path: &Path| std::fs::read_to_string(path).map_err(Error::io(path));
    let missing = |path: &Path| {
        Error::Rootless(format!(
            "{path} has no range for user {name} (uid {uid}): add one, e.g. \
             `usermod --add-subuids 1000000-1065535 --add-subgids 1000000-1065535 {name}`",
            path = path.display()
        ))
    };
    let uids = subordinate_range(&read(subuid)?, &name, uid).ok_or_else(|| missing(subuid))?;
    let gids = subordinate_range(&read(subgid)?, &name, uid).ok_or_else(|| missing(subgid))?;
    for tool in ["newuidmap", "newgidmap"] {
        if !on_path(tool) {
            return Err(Error::Rootless(format!("{tool} is not on PATH (Debian package `uidmap`)")));
        }
    }
    Ok(IdMap {
        host_uid: uids.start,
        host_gid: gids.start,
        size: uids.count.min(gids.count),
        owner: Some(Owner { uid, gid }),
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Where a rootless runtime keeps its state by default: `$XDG_RUNTIME_DIR/hearth`, else
/// `~/.local/share/hearth` — never `/run/hearth`, which is root's.
pub fn default_state_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").and_then(absolute) {
        return Some(dir.join("hearth"));
    }
    std::env::var_os("HOME").and_then(absolute).map(|home| home.join(".local/share/hearth"))
}

/// A process of the container whose namespaces and root an ordinary user may open: the
/// init if it may, else its first descendant that was exec'd in the container. (A
/// container's minimal init is forked, never exec'd, from libcontainer's: it stays
/// non-dumpable with its memory owned by the host's user namespace, so only root may
/// inspect it — which is what keeps `/proc/1/exe`, the runtime's binary, out of reach.)
pub(crate) fn inspectable_pid(init: i32) -> Result<i32, String> {
    let mut queue = std::collections::VecDeque::from([init]);
    while let Some(pid) = queue.pop_front() {
        if std::fs::File::open(format!("/proc/{pid}/ns/user")).is_ok() {
            return Ok(pid);
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        queue.extend(children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
        if queue.len() > 4096 {
            break;
        }
    }
    Err(format!("no process of the container (init {init}) may be entered by this user"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_range_is_found_by_name_or_uid_and_bad_lines_are_skipped() {
        let text = "root:100000:65536\nbroken line\nalice:x:5\nalice:200000:0\nalice:300000:65536\n1001:400000:1000\n";
        assert_eq!(subordinate_range(text, "alice", 1000), Some(SubordinateRange { start: 300_000, count: 65_536 }));
        assert_eq!(subordinate_range(text, "bob", 1001), Some(SubordinateRange { start: 400_000, count: 1000 }));
        assert_eq!(subordinate_range(text, "carol", 1002), None);
        assert_eq!(subordinate_range("dave:4294967295:2\n", "dave", 7), None, "a range past u32::MAX");
    }

    #[test]
    fn a_user_without_a_range_gets_an_error_naming_the_file_and_the_fix() {
        let dir = std::env::temp_dir().join(format!("hearth-subuid-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (subuid, subgid) = (dir.join("subuid"), dir.join("subgid"));
        std::fs::write(&subuid, "nobody-here:100000:65536\n").unwrap();
        std::fs::write(&subgid, "nobody-here:100000:65536\n").unwrap();
        let err = id_map_for_current_user(&subuid, &subgid).unwrap_err().to_string();
        assert!(err.contains(&subuid.display().to_string()) && err.contains("--add-subuids"), "{err}");
        let err = id_map_for_current_user(&dir.join("missing"), &subgid).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_owner_is_container_root_and_the_range_follows() {
        let map =
            IdMap { host_uid: 300_000, host_gid: 400_000, size: 65_536, owner: Some(Owner { uid: 1000, gid: 1001 }) };
        assert_eq!(map.container_ids(), 65_537);
        let (uids, gids) = map.mappings().unwrap();
        let triples = |m: &[oci_spec::runtime::LinuxIdMapping]| {
            m.iter().map(|m| (m.container_id(), m.host_id(), m.size())).collect::<Vec<_>>()
        };
        assert_eq!(triples(&uids), [(0, 1000, 1), (1, 300_000, 65_536)]);
        assert_eq!(triples(&gids), [(0, 1001, 1), (1, 400_000, 65_536)]);
    }
}
