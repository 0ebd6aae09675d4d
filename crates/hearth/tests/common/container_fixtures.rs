//! Fixtures for tests of real containers: a busybox-static root filesystem, a `Runtime`
//! per test with its own directory and cgroup parent, and a count of everything it left
//! on the host. Needs root and Debian's `busybox-static`.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hearth_containers::{ContainerId, ContainerSpec, ExitStatus, IdMap, Placement, Runtime, RuntimeConfig, cgroup};

const BASE_PREFIX: &str = "hearth-container-tests-";

/// This test process's directory (mode 0755: container uids must traverse it). Directories
/// of earlier test processes that are gone are removed on the way.
pub fn base_dir() -> PathBuf {
    static STALE_REMOVED: OnceLock<()> = OnceLock::new();
    STALE_REMOVED.get_or_init(|| {
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let pid = name.strip_prefix(BASE_PREFIX).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = std::env::temp_dir().join(format!("{BASE_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A busybox root filesystem, made once per test process.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "install Debian's busybox-static (apt-get install busybox-static)");
        let root = base_dir().join("rootfs");
        for dir in ["bin", "etc", "proc", "dev", "sys", "tmp", "mnt", "data", "home/vcap", "root"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines().filter(|a| *a != "busybox") {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nvcap:x:2000:2000::/home/vcap:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nvcap:x:2000:\n").unwrap();
        root
    })
}

pub fn sh(script: &str) -> ContainerSpec {
    ContainerSpec::new(rootfs(), vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// A runtime of its own for one test: its own directory and cgroup parent.
pub struct TestRuntime {
    pub runtime: Runtime,
    pub root: PathBuf,
    pub cgroup_parent: String,
}

impl TestRuntime {
    pub fn new(name: &str) -> Self {
        let root = base_dir().join(name);
        let cgroup_parent = format!("hearth-test-{}-{name}", std::process::id());
        Self { runtime: Runtime::new(Self::config(&root, &cgroup_parent)), root, cgroup_parent }
    }

    fn config(root: &Path, cgroup_parent: &str) -> RuntimeConfig {
        RuntimeConfig {
            root: root.to_path_buf(),
            helper: PathBuf::from(env!("CARGO_BIN_EXE_hearth")),
            placement: Placement { id_map: IdMap::default(), cgroup_parent: cgroup_parent.to_string() },
            // Containers here have no network; the default settings are never used.
            network: hearth_containers::NetworkConfig::default(),
        }
    }

    /// Another runtime on the same directory: what a restarted server gets.
    pub fn reopen(&self) -> Runtime {
        Runtime::new(Self::config(&self.root, &self.cgroup_parent))
    }

    /// Creates, runs to the end, destroys; returns exit status, stdout and stderr.
    pub async fn run(&self, id: &str, spec: ContainerSpec) -> (ExitStatus, String, String) {
        let id = ContainerId::new(id).unwrap();
        self.runtime.create(&id, &spec).await.unwrap();
        let result = self.runtime.run(&id).await;
        self.runtime.destroy(&id).await.unwrap();
        let result = result.unwrap();
        (result.exit, String::from_utf8(result.stdout).unwrap(), String::from_utf8(result.stderr).unwrap())
    }

    /// The pids of this runtime's helpers whose command line reads `container-helper ROLE
    /// ROOT` (`zygote`, or `keeper` for one forked from it).
    pub fn helpers(&self, role: &str) -> Vec<String> {
        let ours = format!("container-helper\0{role}\0{}\0", self.root.display());
        live_processes().into_iter().filter(|p| p.cmdline.contains(&ours)).map(|p| p.pid).collect()
    }

    /// Everything of this runtime still on the host: state and bundle directories, cgroup
    /// directories, mounts, processes (containers' and helpers').
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [self.root.join("state"), self.root.join("containers")] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                found.push(format!("file {}", entry.path().display()));
            }
        }
        for parent in cgroup::dirs(Path::new(&format!("/{}", self.cgroup_parent))) {
            for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    found.push(format!("cgroup {}", entry.path().display()));
                }
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.root.to_string_lossy().to_string();
        for line in mountinfo.lines().filter(|l| l.contains(&root) || l.contains(&self.cgroup_parent)) {
            found.push(format!("mount {line}"));
        }
        // The runtime keeps one zygote, which keepers are forked from; it belongs to no
        // container, but a second one would be a leak.
        let zygote = format!("container-helper\0zygote\0{root}\0");
        let mut zygotes = Vec::new();
        for process in live_processes() {
            if !(process.cmdline.contains(&root) || process.cgroups.contains(&self.cgroup_parent)) {
                continue;
            }
            let line = format!("process {} {:?}", process.pid, process.cmdline);
            if process.cmdline.contains(&zygote) {
                zygotes.push(line);
            } else {
                found.push(line);
            }
        }
        if zygotes.len() > 1 {
            found.extend(zygotes);
        }
        found
    }
}

/// Removes what a test left (a failed assertion skips its `destroy`) with plain helper
/// calls: this runs inside the test's tokio runtime, where no other runtime can start.
impl Drop for TestRuntime {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.root.join("containers")).into_iter().flatten().flatten() {
            let _ = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
                .args(["container-helper", "delete"])
                .arg(&self.root)
                .arg(entry.file_name())
                .status();
            let id = entry.file_name().to_string_lossy().to_string();
            for dir in cgroup::dirs(Path::new(&format!("/{}/{id}", self.cgroup_parent))) {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for dir in cgroup::dirs(Path::new(&format!("/{}", self.cgroup_parent))) {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A process on the host, as `/proc` shows it.
struct LiveProcess {
    pid: String,
    /// Its arguments, NUL-separated.
    cmdline: String,
    cgroups: String,
}

/// Every process on the host but zombies.
fn live_processes() -> Vec<LiveProcess> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
            continue;
        }
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).unwrap_or_default()).to_string();
        let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        found.push(LiveProcess { pid, cmdline, cgroups });
    }
    found
}
