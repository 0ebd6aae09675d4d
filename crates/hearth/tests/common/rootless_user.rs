//! Root's part of the rootless tests: the ordinary user `hearth-rootless` with subordinate
//! ids 1000000-1065535 (apart from the 100000+ range root's runtimes use), a cgroup parent
//! delegated to it, `/dev/net/tun` open to users (pasta), programs it may run, and a count
//! of what the user left on the host. Needs Debian's `uidmap`, `passt` and `runuser`.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_containers::cgroup;

pub const USER: &str = "hearth-rootless";
pub const SUB_START: u32 = 1_000_000;
pub const SUB_COUNT: u32 = 65_536;

/// The test user with its subordinate range; its uid and gid.
pub fn ensure_user() -> (u32, u32) {
    let exists = Command::new("id").arg(USER).output().unwrap().status.success();
    if !exists {
        let status =
            Command::new("useradd").args(["--system", "--create-home", "--shell", "/bin/sh", USER]).status().unwrap();
        assert!(status.success(), "useradd {USER}");
    }
    let range = format!("{SUB_START}-{}", SUB_START + SUB_COUNT - 1);
    let has = |file: &str| {
        std::fs::read_to_string(file).unwrap_or_default().lines().any(|l| l.starts_with(&format!("{USER}:")))
    };
    if !has("/etc/subuid") || !has("/etc/subgid") {
        let status =
            Command::new("usermod").args(["--add-subuids", &range, "--add-subgids", &range, USER]).status().unwrap();
        assert!(status.success(), "usermod --add-subuids {range} {USER}");
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, USER]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A directory `base` owned by the user (0755).
pub fn user_dir(base: &Path, user: (u32, u32)) {
    std::fs::create_dir_all(base).unwrap();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(base, Some(user.0), Some(user.1)).unwrap();
}

/// A cgroup parent the user may create cgroups in: on cgroup v1 one directory per
/// hierarchy (cpuset's with the parent's CPUs and memory nodes), on v2 one. Returns them.
pub fn delegate_cgroup(parent: &str, user: (u32, u32)) -> Vec<PathBuf> {
    let dirs = cgroup::dirs(Path::new(&format!("/{parent}")));
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = std::fs::read_to_string(dir.parent().unwrap().join(file)) {
                std::fs::write(dir.join(file), value.trim()).unwrap();
            }
        }
        for entry in std::iter::once(dir.clone()).chain(["cgroup.procs", "tasks"].map(|f| dir.join(f))) {
            if entry.exists() {
                std::os::unix::fs::chown(&entry, Some(user.0), Some(user.1)).unwrap();
            }
        }
    }
    dirs
}

/// pasta opens `/dev/net/tun` as the user: udev's default mode 0666 (a minimal machine
/// may have made it 0600).
pub fn ensure_tun_is_open_to_users() {
    let tun = Path::new("/dev/net/tun");
    let mode = std::fs::metadata(tun).expect("/dev/net/tun").permissions().mode();
    if mode & 0o666 != 0o666 {
        eprintln!("making /dev/net/tun mode 0666, as udev does");
        std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
}

/// `exe` if the user may run it, else a copy of it in `base` named `name`.
pub fn runnable_by_user(exe: &Path, base: &Path, name: &str) -> PathBuf {
    let ok = Command::new("runuser").args(["-u", USER, "--", "test", "-x"]).arg(exe).status().unwrap().success();
    if ok {
        return exe.to_path_buf();
    }
    let copy = base.join(name);
    std::fs::copy(exe, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// Processes of the user or its subordinate ids (other than zombies): pid, uid, command line.
pub fn user_processes(uid: u32) -> Vec<(u32, u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(pid) = name.parse::<u32>() else { continue };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let field = |f: &str| status.lines().find_map(|l| l.strip_prefix(f)).unwrap_or("").trim().to_string();
        let owner: u32 = field("Uid:").split_whitespace().next().and_then(|u| u.parse().ok()).unwrap_or(0);
        let zombie = field("State:").starts_with('Z');
        if !zombie && (owner == uid || (SUB_START..SUB_START + SUB_COUNT).contains(&owner)) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push((pid, owner, String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string()));
        }
    }
    found
}

/// What the user left: its processes, mounts naming `base`, cgroups under the delegated
/// parent.
pub fn host_leftovers(uid: u32, base: &Path, delegated: &[PathBuf]) -> Vec<String> {
    let mut found: Vec<String> = user_processes(uid)
        .into_iter()
        .map(|(pid, owner, cmdline)| format!("process {pid} uid {owner}: {cmdline}"))
        .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let base_text = base.to_string_lossy().to_string();
    found.extend(mountinfo.lines().filter(|l| l.contains(&base_text)).map(|l| format!("mount {l}")));
    for dir in delegated {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.push(format!("cgroup {}", entry.path().display()));
            }
        }
    }
    found
}
