//! Rootless containers: the container lifecycle run by an ordinary user with a subordinate
//! id range, through `hearth_containers::Runtime` and the real binary as its helper.
//!
//! Run as root (CI), the test makes that user (`hearth-rootless`, subordinate ids
//! 1000000-1065535, apart from the 100000+ range root's runtimes use), delegates it a cgroup
//! parent (cgroup v1 needs one, see `Runtime::create`), and runs itself again as the user
//! with `runuser`; then, as root, it checks that nothing of the user's containers is left.
//! Run as an ordinary user, it runs the lifecycle directly. Needs Debian's `uidmap`
//! (newuidmap/newgidmap), `passt` (pasta) and `busybox-static`.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common/rootless_user.rs"]
mod rootless_user;

use hearth_containers::network::PortMapping;
use hearth_containers::{
    ContainerId, ContainerSpec, Error, ExitStatus, NetworkConfig, NetworkSpec, Overlay, Placement, ProcessSpec,
    Runtime, RuntimeConfig, Status, cgroup, rootless,
};

use rootless_user::{
    SUB_COUNT, SUB_START, USER, delegate_cgroup, ensure_tun_is_open_to_users, ensure_user, runnable_by_user, user_dir,
};
/// Set for the run as the user: its base directory and delegated cgroup parent.
const BASE_ENV: &str = "HEARTH_ROOTLESS_TEST_BASE";
const CGROUP_ENV: &str = "HEARTH_ROOTLESS_TEST_CGROUP";
const HELPER_ENV: &str = "HEARTH_ROOTLESS_TEST_HELPER";
const TEST_NAME: &str = "an_ordinary_user_runs_the_container_lifecycle";

#[test]
fn an_ordinary_user_runs_the_container_lifecycle() {
    if rootless::is_rootless() {
        let base = std::env::var_os(BASE_ENV).map(PathBuf::from).unwrap_or_else(own_base_dir);
        let cgroup_parent = std::env::var(CGROUP_ENV).unwrap_or_else(|_| "hearth-rootless".into());
        let helper =
            std::env::var_os(HELPER_ENV).map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hearth")), PathBuf::from);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(lifecycle(&base, &cgroup_parent, &helper));
    } else {
        as_the_user();
    }
}

fn own_base_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-rootless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Root's part: make the user, delegate a cgroup parent, run the test as the user, then
/// count what is left on the host and clean up.
fn as_the_user() {
    let user = ensure_user();
    let base = std::env::temp_dir().join(format!("hearth-rootless-{}", std::process::id()));
    user_dir(&base, user);
    let cgroup_parent = format!("hearth-rootless-test-{}", std::process::id());
    let delegated = delegate_cgroup(&cgroup_parent, user);
    ensure_tun_is_open_to_users();
    // The test binary and the helper must be the user's to run: copies when they are not.
    let test_exe = runnable_by_user(&std::env::current_exe().unwrap(), &base, "rootless-test");
    let helper = runnable_by_user(Path::new(env!("CARGO_BIN_EXE_hearth")), &base, "hearth");

    let output = Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(&test_exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(BASE_ENV, &base)
        .env(CGROUP_ENV, &cgroup_parent)
        .env(HELPER_ENV, &helper)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("--- as {USER} ---\n{stdout}{stderr}---");

    let leftovers = host_leftovers(user.0, &base, &delegated);
    for dir in delegated.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(output.status.success(), "the lifecycle as {USER} failed: {}", output.status);
    assert!(stdout.contains("1 passed"), "the test ran as {USER}: {stdout}");
    assert_eq!(leftovers, Vec::<String>::new(), "nothing of the user's containers is left");
}

/// What the user's containers left: processes, mounts, cgroups, and state files.
fn host_leftovers(uid: u32, base: &Path, delegated: &[PathBuf]) -> Vec<String> {
    let mut found = rootless_user::host_leftovers(uid, base, delegated);
    for dir in ["state/state", "state/containers"] {
        for entry in std::fs::read_dir(base.join(dir)).into_iter().flatten().flatten() {
            found.push(format!("file {}", entry.path().display()));
        }
    }
    found
}

/// The user's part: a networked container on an overlay root filesystem, from create to
/// destroy, checked the way a user would.
async fn lifecycle(base: &Path, cgroup_parent: &str, helper: &Path) {
    let id_map = rootless::current_user_id_map().expect("a subordinate range for this user");
    let runtime = Runtime::new(RuntimeConfig {
        root: base.join("state"),
        helper: helper.to_path_buf(),
        placement: Placement { id_map, cgroup_parent: cgroup_parent.into() },
        network: NetworkConfig { host_ports: 62100..=62199, ..NetworkConfig::default() },
    });
    assert!(runtime.is_rootless());
    let (lower, upper, work, merged) = (base.join("lower"), base.join("upper"), base.join("work"), base.join("merged"));
    busybox_rootfs(&lower);
    for dir in [&upper, &work, &merged] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut spec = ContainerSpec::new(
        &merged,
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "id -u; cat /proc/self/uid_map; mkdir -p /tmp/www; echo served-from-a-rootless-container > \
             /tmp/www/index.html; echo written > /home/vcap/note; exec httpd -f -p 8080 -h /tmp/www"
                .into(),
        ],
    );
    spec.rootfs_readonly = false;
    spec.init = true;
    spec.limits.pids = Some(64);
    spec.overlay = Some(Overlay { lower: vec![lower.clone()], writable: Some((upper.clone(), work.clone())) });
    spec.network = Some(NetworkSpec {
        port_mappings: vec![PortMapping { container_port: 8080, host_port: 0 }],
        egress: Vec::new(),
    });
    let id = ContainerId::new("web-0").unwrap();
    let info = runtime.create(&id, &spec).await.unwrap();
    assert_eq!(info.status, Status::Created);
    runtime.start(&id).await.unwrap();
    let host_port = info.network.as_ref().unwrap().port_mappings[0].host_port;
    assert!((62100..=62199).contains(&host_port), "{info:?}");

    // Output comes back, and the process runs as the mapped user.
    let stdout = wait_for_output(&runtime, &id, &SUB_COUNT.to_string()).await;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words.join(" "), format!("2000 0 {me} 1 1 {SUB_START} {SUB_COUNT}"), "id -u, then the uid map");
    let pid = runtime.info(&id).await.unwrap().pid.expect("a running init");
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let httpd: i32 = children.split_whitespace().next().expect("the main process under the init").parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{httpd}/status")).unwrap();
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().to_string();
    let expected = (SUB_START + 2000 - 1).to_string();
    assert!(uids.split_whitespace().all(|u| u == expected), "container uid 2000 is host uid {expected}: {uids}");

    // The port forward answers (net-in); the overlay's writes land in the upper layer.
    let body = http_get(host_port).await;
    assert!(body.starts_with("HTTP/1.") && body.contains("served-from-a-rootless-container"), "{body}");
    let note = upper.join("home/vcap/note");
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "written\n");
    assert_eq!(std::fs::metadata(&note).unwrap().uid(), SUB_START + 2000 - 1);
    assert!(std::fs::read_dir(&merged).unwrap().next().is_none(), "the overlay is mounted only inside the container");

    // exec: another process, its output and exit status.
    let mut process = runtime
        .exec(&id, ProcessSpec::new(vec!["/bin/sh".into(), "-c".into(), "id -u; cat /home/vcap/note; exit 7".into()]))
        .await
        .unwrap();
    let (out, err) = (process.take_stdout().unwrap(), process.take_stderr().unwrap());
    let (out, err) = tokio::join!(out.read_all(), err.read_all());
    assert_eq!(process.wait().await.unwrap(), ExitStatus::Code(7), "{:?}", String::from_utf8_lossy(&err.unwrap()));
    assert_eq!(String::from_utf8(out.unwrap()).unwrap(), "2000\nwritten\n");

    // stop: SIGTERM reaches httpd through the init, which exits 128+15.
    runtime.kill(&id, 15).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), runtime.wait(&id)).await.expect("stopped").unwrap();
    assert_eq!(exit, ExitStatus::Code(143));
    runtime.destroy(&id).await.unwrap();
    runtime.destroy(&id).await.unwrap();
    assert!(matches!(runtime.info(&id).await, Err(Error::NotFound(_))));
    // The forward's listener goes with its pasta (an old pasta may take a moment to exit).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", host_port)).is_ok() {
        assert!(Instant::now() < deadline, "the port forward on {host_port} outlived its container");
        std::thread::sleep(Duration::from_millis(100));
    }

    undelegated_cgroups_are_refused_or_unenforced(base, helper, &spec).await;
    println!("rootless lifecycle: ok");
}

/// Without a delegated cgroup parent: on cgroup v1 the create is refused with what to do,
/// and leaves nothing; on v2 it goes on without limits.
async fn undelegated_cgroups_are_refused_or_unenforced(base: &Path, helper: &Path, spec: &ContainerSpec) {
    let root = base.join("state-undelegated");
    let runtime = Runtime::new(RuntimeConfig {
        root: root.clone(),
        helper: helper.to_path_buf(),
        placement: Placement { id_map: rootless::current_user_id_map().unwrap(), cgroup_parent: "hearth".into() },
        network: NetworkConfig::default(),
    });
    let spec = ContainerSpec { network: None, ..spec.clone() };
    let id = ContainerId::new("undelegated").unwrap();
    match cgroup::mode() {
        cgroup::Mode::V1 => {
            let err = runtime.create(&id, &spec).await.unwrap_err();
            assert!(matches!(err, Error::Rootless(_)) && err.to_string().contains("chown"), "{err}");
            assert!(!root.join("containers/undelegated").exists(), "a refused create leaves nothing");
        }
        cgroup::Mode::V2 => {
            runtime.create(&id, &spec).await.unwrap();
            runtime.destroy(&id).await.unwrap();
        }
    }
}

async fn wait_for_output(runtime: &Runtime, id: &ContainerId, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stdout = String::from_utf8(runtime.output(id).await.unwrap().0).unwrap();
        if stdout.contains(needle) || Instant::now() > deadline {
            return stdout;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /` on the host's loopback at `port`, retried until the server listens.
async fn http_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut body = String::new();
            stream.read_to_string(&mut body)?;
            Ok(body)
        })
        .await
        .unwrap();
        match attempt {
            Ok(body) if !body.is_empty() => return body,
            _ if Instant::now() > deadline => panic!("no answer on port {port}: {attempt:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A busybox root filesystem owned by the user (so by root inside the container).
fn busybox_rootfs(root: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "install Debian's busybox-static");
    for dir in ["bin", "etc", "proc", "dev", "sys", "tmp", "home/vcap", "root"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nvcap:x:2000:2000::/home/vcap:/bin/sh\n")
        .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nvcap:x:2000:\n").unwrap();
    // vcap owns its home: chown is the container root's job, here done with a container process.
    std::fs::set_permissions(root.join("home/vcap"), std::fs::Permissions::from_mode(0o777)).unwrap();
}
