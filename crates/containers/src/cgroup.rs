//! Reading and sweeping a container's cgroup directories, on cgroup v1 (one directory per
//! hierarchy) and pure v2 (one directory). Plain file reads and `rmdir`s; creating and
//! configuring cgroups is libcontainer's job, in the helper (a v1 cgroup parent is readied
//! ahead, `prepare_parent`).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Controllers in separate v1 hierarchies (a hybrid host's extra cgroup2 mount, which
    /// libcontainer does not use, is ignored).
    V1,
    /// One unified v2 hierarchy.
    V2,
}

pub fn mode() -> Mode {
    if Path::new(ROOT).join("cgroup.controllers").exists() { Mode::V2 } else { Mode::V1 }
}

/// Every directory a cgroup path (`/hearth/ID`) has on this host.
pub fn dirs(path: &Path) -> Vec<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    match mode() {
        Mode::V2 => vec![Path::new(ROOT).join(rel)],
        Mode::V1 => {
            let mut dirs = Vec::new();
            let Ok(entries) = std::fs::read_dir(ROOT) else { return dirs };
            for entry in entries.flatten() {
                let hierarchy = entry.path();
                // Skip the comounted aliases (cpu,cpuacct symlinks) and the hybrid cgroup2 mount.
                let is_symlink = entry.file_type().is_ok_and(|t| t.is_symlink());
                let is_v1 = hierarchy.join("cgroup.procs").exists() && !hierarchy.join("cgroup.controllers").exists();
                if !is_symlink && is_v1 {
                    dirs.push(hierarchy.join(rel));
                }
            }
            dirs.sort();
            dirs
        }
    }
}

/// The first of a cgroup path's directories on this host that this process may not create
/// cgroups in (missing, or not writable), if any: for a rootless runtime, a cgroup parent
/// must be delegated to its user (v1: in every hierarchy; v2: the one directory).
pub fn undelegated(path: &Path) -> Option<PathBuf> {
    use nix::unistd::{AccessFlags, access};
    let all = dirs(path);
    if all.is_empty() {
        return Some(Path::new(ROOT).to_path_buf());
    }
    all.into_iter().find(|dir| access(dir.as_path(), AccessFlags::W_OK | AccessFlags::X_OK).is_err())
}

/// Readies a cgroup parent (`/hearth`) on a v1 host's cpuset hierarchy: each directory
/// down to it gets the cpus and mems of the one above and `cgroup.clone_children` on, so
/// the kernel gives a container's cpuset cgroup its cpus and mems as it is made. Otherwise
/// libcontainer writes `cpuset.cpus` into each new one, and that write rebuilds the
/// scheduler's domains (0.1-0.5 ms measured here, under a global lock). Best effort: what
/// fails here libcontainer still does itself.
pub fn prepare_parent(parent: &Path) {
    let cpuset = Path::new(ROOT).join("cpuset");
    if mode() != Mode::V1 || !cpuset.join("cpuset.cpus").exists() {
        return;
    }
    let mut dir = cpuset;
    for component in parent.components().filter(|c| matches!(c, std::path::Component::Normal(_))) {
        let above = dir.clone();
        dir.push(component);
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return,
            _ => {}
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if own.trim().is_empty() {
                let Ok(inherited) = std::fs::read_to_string(above.join(file)) else { return };
                if std::fs::write(dir.join(file), inherited.trim()).is_err() {
                    return;
                }
            }
        }
        if std::fs::write(dir.join("cgroup.clone_children"), "1").is_err() {
            return;
        }
    }
}

/// SIGKILLs every process in a container's cgroup directories.
pub fn kill_all(path: &Path) {
    for dir in dirs(path) {
        let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else { continue };
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Resource use read from a container's cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory charged to the cgroup now, in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU time used so far, in nanoseconds.
    pub cpu_nanos: Option<u64>,
    /// How many times the kernel's OOM killer killed a process in the cgroup.
    pub oom_kills: Option<u64>,
}

pub fn usage(path: &Path) -> Usage {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let root = Path::new(ROOT);
    let number = |p: PathBuf| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let keyed = |p: PathBuf, key: &str| {
        let text = std::fs::read_to_string(p).ok()?;
        text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
    };
    match mode() {
        Mode::V1 => Usage {
            memory_bytes: number(root.join("memory").join(rel).join("memory.usage_in_bytes")),
            cpu_nanos: number(root.join("cpuacct").join(rel).join("cpuacct.usage")),
            oom_kills: keyed(root.join("memory").join(rel).join("memory.oom_control"), "oom_kill"),
        },
        Mode::V2 => {
            let dir = root.join(rel);
            Usage {
                memory_bytes: number(dir.join("memory.current")),
                cpu_nanos: keyed(dir.join("cpu.stat"), "usage_usec").map(|us| us * 1000),
                oom_kills: keyed(dir.join("memory.events"), "oom_kill"),
            }
        }
    }
}

/// Removes whatever is left of a container's cgroup directories (they must be empty of
/// processes; one still busy is tried again for up to a second). Missing directories are
/// fine; returns the ones that could not be removed.
pub fn sweep(path: &Path) -> Vec<(PathBuf, std::io::Error)> {
    let once = || {
        let mut failed = Vec::new();
        for dir in dirs(path) {
            match std::fs::remove_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => failed.push((dir, e)),
                _ => {}
            }
        }
        failed
    };
    // A process just killed may take a moment to leave its cgroup: EBUSY until then.
    let mut failed = once();
    for _ in 0..100 {
        if !failed.iter().any(|(_, e): &(PathBuf, std::io::Error)| e.raw_os_error() == Some(libc::EBUSY)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        failed = once();
    }
    failed
}
