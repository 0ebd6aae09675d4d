//! A real `hearth server` process and the `hearth` client binary run as a user would
//! (stdout, stderr, exit codes); shared by the end-to-end tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// A running `hearth server` with its own data directory; stopped on drop.
pub struct Server {
    child: Child,
    pub root: PathBuf,
    pub url: String,
    /// The `hearth server` arguments after `--data-dir` and `--listen`, as given.
    extra: Vec<String>,
    /// Whether the first start pushes the sample app (as for a newcomer).
    sample_app: bool,
}

impl Server {
    /// A server that runs no containers.
    pub fn start() -> Self {
        Self::start_with(&["--no-containers"])
    }

    /// A server with extra `hearth server` arguments (`{root}` in one is this server's
    /// directory).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_inner(extra, false)
    }

    /// As `start_with`, but the first start pushes the sample app, as for a newcomer.
    pub fn start_as_newcomer(extra: &[&str]) -> Self {
        Self::start_inner(extra, true)
    }

    fn start_inner(extra: &[&str], sample_app: bool) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("hearth-cli-e2e-{}-{nanos}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let extra: Vec<String> = extra.iter().map(|a| a.replace("{root}", &root.to_string_lossy())).collect();
        let child = spawn(&root, &addr, &extra, sample_app);
        let server = Self { child, root, url: format!("http://{addr}"), extra, sample_app };
        server.wait_ready();
        server
    }

    /// Stops the server as an operator would (SIGTERM, waiting for it to exit) and starts
    /// it again on the same address and data; its app instances run on meanwhile.
    pub fn restart(&mut self) {
        self.terminate();
        let addr = self.url.trim_start_matches("http://").to_string();
        self.child = spawn(&self.root, &addr, &self.extra, self.sample_app);
        self.wait_ready();
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn wait_ready(&self) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = runtime.block_on(async {
                matches!(client.get(format!("{}/", self.url)).send().await, Ok(r) if r.status() == 200)
            });
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "server did not answer GET / within 60s\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Logs the client in as admin and targets a new org `acme` and space `dev` in it.
    pub fn sign_in_to_acme_dev(&self) {
        self.hearth(&["api", &self.url]).ok();
        self.hearth(&["login", "-u", "admin", "-p", ADMIN_PASSWORD]).ok();
        for args in
            [&["create-org", "acme"][..], &["target", "-o", "acme"], &["create-space", "dev"], &["target", "-s", "dev"]]
        {
            self.hearth(args).ok();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// Runs `hearth ARGS` as a client with this test's config directory.
    pub fn hearth(&self, args: &[&str]) -> Run {
        self.hearth_in(&self.root.join("home"), args)
    }

    pub fn hearth_in(&self, home: &Path, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_HOME", home)
            .stdin(Stdio::null())
            .output()
            .expect("run hearth");
        Run { args: args.join(" "), output }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log());
        }
        // App instances outlive their server by design; a test's must not outlive the test:
        // every process in this server's cgroups goes, then its keepers and mounts.
        let root = self.root.to_string_lossy().to_string();
        let parent = format!("/{}/", cgroup_parent(&self.root));
        for _ in 0..3 {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
                if cgroups.lines().any(|l| l.split(':').nth(2).is_some_and(|p| p.starts_with(&parent))) {
                    let _ = Command::new("kill").args(["-KILL", &entry.file_name().to_string_lossy()]).status();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let keepers = format!("container-helper (keep|keeper|zygote) {root}/");
        let _ = Command::new("pkill").args(["-KILL", "-f", &keepers]).status();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&root)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        // And the cgroups those processes were in.
        drop(super::CgroupParents(vec![cgroup_parent(&self.root)]));
    }
}

/// Starts `hearth server` on `addr` with its data under `root` (the log is appended to).
fn spawn(root: &Path, addr: &str, extra: &[String], sample_app: bool) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(root.join("server.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    if !sample_app {
        command.env("HEARTH_NO_SAMPLE_APP", "true");
    }
    command
        .args(["server", "--data-dir"])
        .arg(root.join("data"))
        .args(["--listen", addr])
        .args(extra)
        .env("HEARTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HEARTH_HOME", root.join("server-home"))
        .env("HEARTH_CGROUP_PARENT", cgroup_parent(root))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start hearth server")
}

/// The cgroup a test server's containers are made under (one per server).
pub fn cgroup_parent(root: &Path) -> String {
    let name = root.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    format!("hearth-test-{name}")
}

/// One client run and what it printed.
pub struct Run {
    pub args: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn describe(&self) -> String {
        format!(
            "`hearth {}` exited {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args,
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert!(self.output.status.success(), "expected success: {}", self.describe());
        self.stdout()
    }

    /// Asserts failure and returns stderr.
    pub fn fails(&self) -> String {
        assert!(!self.output.status.success(), "expected failure: {}", self.describe());
        assert!(!self.stderr().contains("Error {"), "Debug dump on stderr: {}", self.describe());
        self.stderr()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// GET `/` through the router's address with `Host: host`: status and body.
pub fn through_router(addr: &str, host: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new().get(format!("http://{addr}/")).header("host", host).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

/// Polls the router until `done(status, body)` (at most 30 s).
pub fn until_router(addr: &str, host: &str, what: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = through_router(addr, host);
        if done(status, &body) {
            return (status, body);
        }
        assert!(Instant::now() < deadline, "{what}: last answer {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a summary printed by push, start, restart or scale has a running instance
/// (they return as soon as one runs, as cf's do).
pub fn shows_running(out: &str) -> bool {
    out.lines().any(|l| l.starts_with('#') && l.contains("   running   "))
}

/// The instances of the web process in `hearth app NAME --json`.
pub fn instances(summary: &Value) -> Vec<Value> {
    summary["processes"][0]["instances"].as_array().cloned().unwrap_or_default()
}
