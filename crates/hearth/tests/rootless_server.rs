//! `hearth server` run by an ordinary user (rootless mode), end to end: as root (CI) the
//! test makes the user `hearth-rootless` with its subordinate ids, delegates it a cgroup
//! parent and starts `hearth server` as that user with `runuser`; then, as a user of the
//! platform would, pushes a buildpack app on the host stack with the `hearth` client,
//! reaches it through the server's router by host name, checks that its process runs as a
//! host id from the subordinate range, scales it to two instances that both answer (and
//! still answer, the same processes, after the server restarts), pushes
//! a Docker image app from a local registry that runs as the image's user, deletes both
//! and stops the server with SIGTERM. Last, the user runs only a cell (`--roles cell`)
//! that joins a platform root runs, and an app pushed there runs on it until the cell
//! drains. Then, as root, nothing of the user's is left: no process, mount or cgroup.
//!
//! First, the image store's helper unpacks layers as the user (owners, whiteouts and opaque
//! directories as its containers see them), and a user without subordinate ids is told what
//! to do. Needs Debian's `uidmap`, `passt`, `busybox-static`, `docker-registry` and
//! util-linux's `runuser`/`unshare`.

mod common;
#[path = "common/rootless_user.rs"]
mod rootless_user;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, free_port, shows_running, through_router};
use common::registry::Registry;
use rootless_user::{
    SUB_START, USER, delegate_cgroup, ensure_tun_is_open_to_users, ensure_user, host_leftovers, runnable_by_user,
    user_dir, user_processes,
};

const DOMAIN: &str = "apps.rootless.internal";

/// `hearth server` as the user, started through `runuser`.
struct UserServer {
    child: Child,
    /// How it was started: runuser's arguments.
    command: Vec<std::ffi::OsString>,
    base: PathBuf,
    addr: String,
    uid: u32,
}

impl UserServer {
    /// Starts the server as `user` and waits until it answers.
    fn start(user: &str, hearth: &Path, base: &Path, uid: u32, cgroup_parent: &str, extra: &[&str]) -> UserServer {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut command: Vec<std::ffi::OsString> = ["-u", user, "--"].map(Into::into).to_vec();
        command.extend([hearth.as_os_str().into(), "server".into(), "--data-dir".into(), base.join("data").into()]);
        let args = ["--listen", &addr, "--app-domain", DOMAIN, "--cgroup-parent", cgroup_parent];
        command.extend(args.iter().chain(extra).map(Into::into));
        let child = spawn_logged(&command, base);
        let server = UserServer { child, command, base: base.to_path_buf(), addr, uid };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers(&format!("http://{}/", self.addr)) {
            assert!(self.running(), "the server exited:\n{}", self.log());
            assert!(Instant::now() < deadline, "the server did not answer within 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops it with SIGTERM and starts it again on the same address and data.
    fn restart(&mut self) {
        assert!(self.stop().success(), "the server stopped cleanly on SIGTERM:\n{}", self.log());
        self.child = spawn_logged(&self.command, &self.base);
        self.wait_ready();
    }

    fn running(&self) -> bool {
        Path::new(&format!("/proc/{}", self.child.id())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
                .unwrap_or_default()
                .contains("State:\tZ")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("server.log")).unwrap_or_default()
    }

    /// The `hearth server` process itself (runuser's child, the user's).
    fn server_pid(&self) -> Option<u32> {
        let data = self.base.join("data").to_string_lossy().to_string();
        user_processes(self.uid)
            .into_iter()
            .find(|(_, owner, cmdline)| {
                *owner == self.uid && cmdline.contains(" server --data-dir ") && cmdline.contains(&data)
            })
            .map(|(pid, _, _)| pid)
    }

    /// SIGTERM to the server, as an operator stops it; waits for it to exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.server_pid().expect("the server process runs as the user");
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for UserServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = self.server_pid() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log());
        }
    }
}

/// `runuser ARGS` with its output appended to `base/server.log`.
fn spawn_logged(args: &[std::ffi::OsString], base: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(base.join("server.log")).unwrap();
    Command::new("runuser")
        .args(args)
        .env("HEARTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HEARTH_NO_SAMPLE_APP", "true")
        .env("HEARTH_HOME", base.join("server-home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("HEARTH_CGROUP_PARENT")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("runuser hearth server")
}

/// Whether `GET url` answers 200.
fn answers(url: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { matches!(reqwest::Client::new().get(url).send().await, Ok(r) if r.status() == 200) })
}

/// `hearth ARGS` as a platform user (the client; any local user may run it).
fn hearth(base: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_HOME", base.join("client-home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "hearth {}: {}\n{stdout}{stderr}", args.join(" "), output.status);
    stdout.into_owned()
}

/// The app's `busybox httpd` processes on the host: pid and host uid.
fn app_processes(uid: u32) -> Vec<(u32, u32)> {
    user_processes(uid)
        .into_iter()
        .filter(|(_, _, cmdline)| cmdline.contains("busybox httpd -f -p"))
        .map(|(pid, owner, _)| (pid, owner))
        .collect()
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_ordinary_user_runs_the_platform_and_its_apps() {
    assert!(!hearth_containers::rootless::is_rootless(), "this test makes its user and so runs as root (as CI does)");
    let user = ensure_user();
    let base = std::env::temp_dir().join(format!("hearth-rootless-server-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    user_dir(&base, user);
    let cgroup_parent = format!("hearth-rootless-server-{}", std::process::id());
    let delegated = delegate_cgroup(&cgroup_parent, user);
    ensure_tun_is_open_to_users();
    let hearth_bin = runnable_by_user(Path::new(env!("CARGO_BIN_EXE_hearth")), &base, "hearth");

    let outcome = std::panic::catch_unwind(|| {
        layers_the_user_unpacks_keep_owners_whiteouts_and_opaque_directories(&hearth_bin, &base);
        a_user_without_subordinate_ids_is_told_what_to_do(&hearth_bin, &base);
        run_as_platform_user(&hearth_bin, &base, user.0, &cgroup_parent);
        a_users_cell_runs_the_apps_of_a_platform_root_runs(&hearth_bin, &base, user.0, &cgroup_parent);
    });
    let leftovers = host_leftovers(user.0, &base, &delegated);
    // Clean up whatever happened (as root: the user's own files and its containers' ids).
    for (pid, _, _) in user_processes(user.0) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    std::thread::sleep(Duration::from_millis(200));
    for dir in delegated.iter().rev() {
        for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(child.path());
        }
        let _ = std::fs::remove_dir(dir);
    }
    let _ = std::fs::remove_dir_all(&base);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(leftovers, Vec::<String>::new(), "nothing of the user's is left once its app is deleted and it stopped");
}

/// The rootless image store's helper, as the user in its containers' id map: a layer's uid
/// 2000 is host SUB_START + 1999, and a layer on top hides a file (whiteout) and a
/// directory's lower contents (opaque) in a `userxattr` overlay mounted in a user namespace.
fn layers_the_user_unpacks_keep_owners_whiteouts_and_opaque_directories(hearth_bin: &Path, base: &Path) {
    let user = ensure_user();
    let dir = base.join("layers");
    std::fs::create_dir_all(&dir).unwrap();
    let tar = |entries: &[(&str, u32)]| {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, uid) in entries {
            let mut header = tar::Header::new_gnu();
            let is_dir = name.ends_with('/');
            header.set_entry_type(if is_dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
            header.set_mode(if is_dir { 0o755 } else { 0o644 });
            header.set_uid(u64::from(*uid));
            header.set_gid(u64::from(*uid));
            header.set_size(if is_dir { 0 } else { 2 });
            builder.append_data(&mut header, name, if is_dir { &b""[..] } else { &b"x\n"[..] }).unwrap();
        }
        builder.into_inner().unwrap()
    };
    let lower = tar(&[("gone", 0), ("dir/", 0), ("dir/old", 0), ("keep/", 2000), ("keep/k", 2000)]);
    let upper = tar(&[(".wh.gone", 0), ("dir/", 0), ("dir/.wh..wh..opq", 0), ("dir/new", 0)]);
    let map = format!("--map-users={SUB_START},1,65536");
    let map_groups = format!("--map-groups={SUB_START},1,65536");
    let in_namespace = |args: &[&str]| {
        let mut command = Command::new("runuser");
        command.args(["-u", USER, "--", "unshare", "--map-root-user", &map, &map_groups]).args(args);
        command
    };
    for (name, bytes) in [("l1", &lower), ("l2", &upper)] {
        let dest = dir.join(name);
        user_dir(&dest, user);
        let mut child = in_namespace(&["--", hearth_bin.to_str().unwrap(), "images-helper", "unpack"])
            .arg(&dest)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "unpack {name}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(report["diff_id"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{report}");
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(dir.join("l1/keep/k")).unwrap().uid(), SUB_START + 1999, "container uid 2000");
    assert_eq!(std::fs::metadata(dir.join("l1/gone")).unwrap().uid(), user.0, "container root: the user");
    for sub in ["u", "w", "m"] {
        user_dir(&dir.join(sub), user);
    }
    let d = dir.display();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={d}/l2:{d}/l1,upperdir={d}/u,workdir={d}/w,userxattr {d}/m && \
         cd {d}/m && find . | sort"
    );
    let output = in_namespace(&["-m", "sh", "-c", &script]).output().unwrap();
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listing}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(listing.lines().collect::<Vec<_>>(), [".", "./dir", "./dir/new", "./keep", "./keep/k"]);
}

/// `nobody` has no range in /etc/subuid: the server runs without containers and says why
/// and what to do.
fn a_user_without_subordinate_ids_is_told_what_to_do(hearth_bin: &Path, base: &Path) {
    let nobody = (65534, 65534);
    let dir = base.join("nobody");
    user_dir(&dir, nobody);
    let mut server = UserServer::start("nobody", hearth_bin, &dir, nobody.0, "hearth", &[]);
    let log = server.log();
    assert!(log.contains("no containers on this machine"), "{log}");
    assert!(log.contains("/etc/subuid has no range for user nobody") && log.contains("usermod --add-subuids"), "{log}");
    assert!(server.stop().success(), "{}", server.log());
}

fn run_as_platform_user(hearth_bin: &Path, base: &Path, uid: u32, cgroup_parent: &str) {
    let registry = Registry::start(&base.join("registry"));
    let web = "mkdir -p /tmp/www && echo image app as $(id -u) > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www";
    let image = registry.push_shell_app(web);
    let extra = ["--insecure-registry", registry.host.as_str()];
    let mut server = UserServer::start(USER, hearth_bin, base, uid, cgroup_parent, &extra);
    let url = format!("http://{}", server.addr);
    let log = server.log();
    assert!(log.contains("disk limits are not enforced when hearth server runs as an ordinary user"), "{log}");
    assert!(!log.contains("no containers on this machine"), "the node opened as {USER}:\n{log}");

    hearth(base, &["api", &url]);
    hearth(base, &["login", "-u", "admin", "-p", ADMIN_PASSWORD]);
    for args in
        [&["create-org", "acme"][..], &["target", "-o", "acme"], &["create-space", "dev"], &["target", "-s", "dev"]]
    {
        hearth(base, args);
    }
    // A buildpack app on the host stack; it writes into its own directory (owned by vcap).
    let site = base.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let run = "mkdir -p www && echo \"instance $CF_INSTANCE_INDEX as $(id -u)\" > www/index.html\n\
               exec busybox httpd -f -p $PORT -h www\n";
    std::fs::write(site.join("run.sh"), run).unwrap();
    std::fs::write(site.join("Procfile"), "web: sh run.sh\n").unwrap();
    let out = hearth(base, &["push", "site", "-p", site.to_str().unwrap(), "-b", "binary_buildpack", "-m", "64M"]);
    assert!(shows_running(&out), "{out}");
    let host = format!("site.{DOMAIN}");
    let mut answer = (0, String::new());
    wait_for("the app answers through the router", 30, || {
        answer = through_router(&server.addr, &host);
        answer.0 == 200
    });
    assert_eq!(answer.1, "instance 0 as 2000\n", "the app, as vcap, through the router");

    // Its process runs as container uid 2000: host uid SUB_START + 1999, neither root nor the user.
    let processes = app_processes(uid);
    assert_eq!(processes.len(), 1, "{processes:?}");
    assert_eq!(processes[0].1, SUB_START + 1999, "{processes:?}");

    hearth(base, &["scale", "site", "-i", "2"]);
    let mut seen = std::collections::BTreeSet::new();
    wait_for("both instances answer through the router", 60, || {
        let (status, body) = through_router(&server.addr, &host);
        if status == 200 {
            seen.insert(body);
        }
        seen.len() == 2
    });
    let expected: std::collections::BTreeSet<String> =
        ["instance 0 as 2000\n", "instance 1 as 2000\n"].into_iter().map(String::from).collect();
    assert_eq!(seen, expected);
    let processes = app_processes(uid);
    assert_eq!(processes.len(), 2, "{processes:?}");
    assert!(processes.iter().all(|(_, owner)| *owner == SUB_START + 1999), "{processes:?}");
    // Their root filesystems are mounted inside their own namespaces, never on the host.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let base_text = base.to_string_lossy();
    assert!(!mountinfo.lines().any(|l| l.contains(base_text.as_ref())), "no host mount under {base_text}");

    // Instances outlive a restart of their server (ARCHITECTURE.md), which finds them again.
    server.restart();
    let mut after = Vec::new();
    wait_for("both instances answer after the restart", 60, || {
        let (status, body) = through_router(&server.addr, &host);
        if status == 200 && !after.contains(&body) {
            after.push(body);
        }
        after.len() == 2
    });
    assert_eq!(app_processes(uid), processes, "the same processes run on");

    // A Docker image: its layer is pulled and unpacked in the user namespace, and its user
    // `app` (1500, from the image's /etc/passwd) is host uid SUB_START + 1499.
    let out = hearth(base, &["push", "web", "--docker-image", &image, "-m", "64M"]);
    assert!(shows_running(&out), "{out}");
    let web_host = format!("web.{DOMAIN}");
    wait_for("the image app answers through the router", 30, || {
        answer = through_router(&server.addr, &web_host);
        answer.0 == 200
    });
    assert_eq!(answer.1, "image app as 1500\n");
    let image_app = user_processes(uid).into_iter().find(|(_, _, c)| c.contains("httpd -f -p 8080 -h /tmp/www"));
    assert_eq!(image_app.map(|(_, owner, _)| owner), Some(SUB_START + 1499));

    // Instances outlive a server restart (ARCHITECTURE.md): deleting the apps is how they go.
    hearth(base, &["delete", "web", "-r", "-f"]);
    hearth(base, &["delete", "site", "-r", "-f"]);
    wait_for("the apps' containers are gone", 60, || {
        user_processes(uid).iter().all(|(_, owner, _)| !(SUB_START..SUB_START + 65_536).contains(owner))
    });
    let status = server.stop();
    assert!(status.success(), "the server stopped cleanly on SIGTERM: {status}\n{}", server.log());
    let log = server.log();
    assert!(!log.contains("disk limit NOT enforced"), "one warning at start, none per container:\n{log}");
}

/// `hearth server --roles cell` as the user, joined to a platform that root runs with
/// `--roles platform`: an app pushed to the platform stages and runs on the user's cell,
/// answers through the platform's router as a host id of the user's range, and the cell
/// drains and exits on SIGTERM.
fn a_users_cell_runs_the_apps_of_a_platform_root_runs(hearth_bin: &Path, base: &Path, uid: u32, cgroup_parent: &str) {
    let dir = base.join("root-platform");
    std::fs::create_dir_all(&dir).unwrap();
    let (addr, cell_addr) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let log = std::fs::File::create(dir.join("platform.log")).unwrap();
    let data = dir.join("data");
    let mut platform = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["server", "--roles", "platform", "--listen", &addr, "--cell-listen", &cell_addr, "--app-domain", DOMAIN])
        .arg("--data-dir")
        .arg(&data)
        .env("HEARTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HEARTH_NO_SAMPLE_APP", "true")
        .env("HEARTH_HOME", dir.join("server-home"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let platform_log = || std::fs::read_to_string(dir.join("platform.log")).unwrap_or_default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the platform answers", 60, || answers(&format!("http://{addr}/")));
        let token = std::fs::read_to_string(data.join("cells/join-token")).unwrap();
        let cell_base = base.join("user-cell");
        user_dir(&cell_base, ensure_user());
        let mut command: Vec<std::ffi::OsString> = ["-u", USER, "--"].map(Into::into).to_vec();
        command.extend([
            hearth_bin.as_os_str().into(),
            "server".into(),
            "--data-dir".into(),
            cell_base.join("data").into(),
        ]);
        let join = format!("https://{cell_addr}");
        let args = ["--roles", "cell", "--join", &join, "--token", token.trim(), "--cell-id", "user-cell"];
        command.extend(
            args.iter().chain(&["--advertise-address", "127.0.0.1", "--cgroup-parent", cgroup_parent]).map(Into::into),
        );
        let mut cell = spawn_logged(&command, &cell_base);
        let cell_log = || std::fs::read_to_string(cell_base.join("server.log")).unwrap_or_default();
        let joined = Instant::now();
        while !cell_log().contains("Cell user-cell joined") {
            assert!(joined.elapsed() < Duration::from_secs(60), "the user's cell did not join:\n{}", cell_log());
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(cell_log().contains("disk limits are not enforced when hearth server runs as an ordinary user"));

        hearth(&dir, &["api", &format!("http://{addr}")]);
        hearth(&dir, &["login", "-u", "admin", "-p", ADMIN_PASSWORD]);
        for args in [&["create-org", "o"][..], &["target", "-o", "o"], &["create-space", "s"], &["target", "-s", "s"]] {
            hearth(&dir, args);
        }
        let site = dir.join("site");
        std::fs::create_dir_all(&site).unwrap();
        let run =
            "mkdir -p www && echo \"cell app as $(id -u)\" > www/index.html\nexec busybox httpd -f -p $PORT -h www\n";
        std::fs::write(site.join("run.sh"), run).unwrap();
        std::fs::write(site.join("Procfile"), "web: sh run.sh\n").unwrap();
        let out =
            hearth(&dir, &["push", "cellsite", "-p", site.to_str().unwrap(), "-b", "binary_buildpack", "-m", "64M"]);
        assert!(shows_running(&out), "{out}");
        let mut answer = (0, String::new());
        wait_for("the cell's app answers through the platform's router", 30, || {
            answer = through_router(&addr, &format!("cellsite.{DOMAIN}"));
            answer.0 == 200
        });
        assert_eq!(answer.1, "cell app as 2000\n");
        let processes = app_processes(uid);
        assert_eq!(processes.len(), 1, "{processes:?}");
        assert_eq!(processes[0].1, SUB_START + 1999, "on the user's cell, as vcap: {processes:?}");

        hearth(&dir, &["delete", "cellsite", "-f", "-r"]);
        wait_for("the app's process ends", 30, || app_processes(uid).is_empty());
        let pid = user_processes(uid)
            .into_iter()
            .find(|(_, owner, cmdline)| *owner == uid && cmdline.contains(" --roles cell "))
            .map(|(pid, _, _)| pid)
            .expect("the cell runs as the user");
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        wait_for("the cell drains and exits", 60, || cell.try_wait().unwrap().is_some());
        assert!(cell.wait().unwrap().success(), "{}", cell_log());
        assert!(cell_log().contains("Cell user-cell drained."), "{}", cell_log());
    }));
    let _ = platform.kill();
    let _ = platform.wait();
    if let Err(panic) = outcome {
        eprintln!("--- platform log ---\n{}", platform_log());
        std::panic::resume_unwind(panic);
    }
}
