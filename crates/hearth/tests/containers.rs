//! Real containers, through `hearth_containers::Runtime` with the real binary as its
//! helper. Needs root (CI runs as root) and Debian's `busybox-static` for the rootfs.

#[path = "common/container_fixtures.rs"]
mod fixtures;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use fixtures::{TestRuntime, rootfs, sh};

use hearth_containers::{ContainerId, ContainerSpec, Error, ExitStatus, Limits, Status, User};

/// Garden's 14 capabilities as the kernel's bit mask (CapBnd in /proc/PID/status).
const GARDEN_CAPS: u64 = (1 << 0) // CHOWN
    | (1 << 1) // DAC_OVERRIDE
    | (1 << 3) // FOWNER
    | (1 << 4) // FSETID
    | (1 << 5) // KILL
    | (1 << 6) // SETGID
    | (1 << 7) // SETUID
    | (1 << 8) // SETPCAP
    | (1 << 10) // NET_BIND_SERVICE
    | (1 << 13) // NET_RAW
    | (1 << 18) // SYS_CHROOT
    | (1 << 27) // MKNOD
    | (1 << 29) // AUDIT_WRITE
    | (1 << 31); // SETFCAP

fn as_root(mut spec: ContainerSpec) -> ContainerSpec {
    spec.user = User { uid: 0, gid: 0 };
    spec
}

fn status_field(status: &str, field: &str) -> String {
    status.lines().find_map(|l| l.strip_prefix(field)).unwrap_or_else(|| panic!("{field} in {status}")).trim().into()
}

#[tokio::test]
async fn a_process_runs_and_its_output_and_exit_code_come_back() {
    let rt = TestRuntime::new("output");
    let mut spec = sh("echo out $GREETING; pwd; hostname; id -u; echo err >&2; exit 3");
    spec.env.push("GREETING=hello".into());
    spec.cwd = "/home/vcap".into();
    spec.hostname = "web-7".into();
    let (exit, stdout, stderr) = rt.run("output", spec).await;
    assert_eq!(exit, ExitStatus::Code(3));
    assert_eq!(stdout, "out hello\n/home/vcap\nweb-7\n2000\n");
    assert_eq!(stderr, "err\n");
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

/// Keepers are forked by the runtime's one zygote, which loaded the binary once. A
/// container runs at the server's nice value and policy, not the zygote's; a keeper goes on
/// when the zygote dies, and the next creates work and get a new zygote.
#[tokio::test]
async fn keepers_come_from_one_zygote_which_is_replaced_when_it_dies() {
    let rt = TestRuntime::new("zygote");
    // Field 19 of /proc/self/stat is the nice value (the command name here has no spaces).
    // Field 41 is the scheduling policy (0: SCHED_OTHER, 5: SCHED_IDLE).
    let nice_and_policy = "cut -d' ' -f19,41 /proc/self/stat";
    let own = std::fs::read_to_string("/proc/self/stat").unwrap();
    let own: Vec<&str> = own.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let expected = format!("{} {}\n", own[19 - 3], own[41 - 3]);
    assert_eq!(rt.helpers("zygote"), Vec::<String>::new(), "no zygote before the first create");
    let (exit, stdout, stderr) = rt.run("first", sh(nice_and_policy)).await;
    assert_eq!((exit, stdout.as_str(), stderr.as_str()), (ExitStatus::Code(0), expected.as_str(), ""));
    let first = rt.helpers("zygote");
    assert_eq!(first.len(), 1, "one zygote: {first:?}");

    let sleeper = ContainerId::new("sleeper").unwrap();
    rt.runtime.create(&sleeper, &sh("sleep 60")).await.unwrap();
    rt.runtime.start(&sleeper).await.unwrap();
    let keeper = std::fs::read_to_string(rt.root.join("containers/sleeper/keeper.pid")).unwrap();
    let keeper = keeper.split_whitespace().next().unwrap().to_string();
    let stat = std::fs::read_to_string(format!("/proc/{keeper}/stat")).unwrap();
    let parent = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(parent, first[0], "the keeper is the zygote's child");
    // The container's own process is forked from the keeper and shows as one until it execs
    // `sleep`, which `start` does not wait for.
    settle(|| rt.helpers("keeper") == vec![keeper.clone()]).await;
    assert_eq!(rt.helpers("keeper"), vec![keeper.clone()], "a forked keeper shows as one");

    std::process::Command::new("kill").args(["-KILL", &first[0]]).status().unwrap();
    settle(|| rt.helpers("zygote").is_empty()).await;
    assert_eq!(rt.helpers("zygote"), Vec::<String>::new(), "the zygote is gone");
    for id in ["after-1", "after-2"] {
        let (exit, stdout, stderr) = rt.run(id, sh(nice_and_policy)).await;
        assert_eq!((exit, stdout.as_str(), stderr.as_str()), (ExitStatus::Code(0), expected.as_str(), ""), "{id}");
    }
    let second = rt.helpers("zygote");
    assert_eq!(second.len(), 1, "a new zygote: {second:?}");
    assert_ne!(second, first);
    assert_eq!(
        rt.runtime.info(&sleeper).await.unwrap().status,
        Status::Running,
        "the orphaned keeper's container runs on"
    );
    rt.runtime.destroy(&sleeper).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

/// A create cancelled while the zygote has its request (here the zygote is stopped, so
/// it cannot answer) gives up that zygote: its late answer never reaches the next create,
/// and the next creates get keepers of their own.
#[tokio::test]
async fn a_create_cancelled_half_way_does_not_hand_its_keeper_to_the_next() {
    let rt = TestRuntime::new("cancelled");
    let (exit, _, _) = rt.run("first", sh("true")).await;
    assert_eq!(exit, ExitStatus::Code(0));
    let zygote = rt.helpers("zygote");
    assert_eq!(zygote.len(), 1, "{zygote:?}");
    std::process::Command::new("kill").args(["-STOP", &zygote[0]]).status().unwrap();
    let stranded = ContainerId::new("stranded").unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(300), rt.runtime.create(&stranded, &sh("true"))).await;
    assert!(cancelled.is_err(), "the create waits on the stopped zygote until it is cancelled");
    // Were that zygote still in use, it would now answer the cancelled request.
    let mut cont = std::process::Command::new("kill");
    cont.args(["-CONT", &zygote[0]]).stderr(std::process::Stdio::null()).status().unwrap();
    rt.runtime.destroy(&stranded).await.unwrap();

    let a = ContainerId::new("a").unwrap();
    rt.runtime.create(&a, &sh("sleep 60")).await.unwrap();
    rt.runtime.start(&a).await.unwrap();
    let (exit, stdout, _) = rt.run("b", sh("echo b")).await;
    assert_eq!((exit, stdout.as_str()), (ExitStatus::Code(0), "b\n"));
    // a's keeper is still a's own: its end is seen as a's.
    rt.runtime.kill(&a, 9).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(5), rt.runtime.wait(&a)).await;
    assert_eq!(waited.expect("a's keeper reports a's end").unwrap(), ExitStatus::Signal(9));
    rt.runtime.destroy(&a).await.unwrap();
    let now = rt.helpers("zygote");
    assert!(!now.contains(&zygote[0]), "the stranded zygote is gone: {now:?}");
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

/// Creates at the same time share the one zygote: each container gets a keeper of its
/// own, which reports that container's output and exit.
#[tokio::test]
async fn concurrent_creates_each_get_their_own_keeper() {
    let rt = TestRuntime::new("concurrent");
    let runs = (0..6).map(|i| {
        let rt = &rt;
        async move {
            let id = format!("c-{i}");
            let (exit, stdout, stderr) = rt.run(&id, sh(&format!("echo {id}; exit {i}"))).await;
            (i, exit, stdout, stderr)
        }
    });
    for (i, exit, stdout, stderr) in futures_util::future::join_all(runs).await {
        assert_eq!((exit, stdout, stderr), (ExitStatus::Code(i), format!("c-{i}\n"), String::new()), "c-{i}");
    }
    assert_eq!(rt.helpers("zygote").len(), 1, "one zygote served them all");
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

/// Returns once `done` holds, or after 5 s (the caller's assertion then says what did not).
async fn settle(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A create with an id in use is refused and leaves the container that has it alone.
#[tokio::test]
async fn a_second_create_with_the_same_id_is_refused_and_changes_nothing() {
    let rt = TestRuntime::new("duplicate");
    let id = ContainerId::new("taken").unwrap();
    rt.runtime.create(&id, &sh("sleep 60")).await.unwrap();
    rt.runtime.start(&id).await.unwrap();
    let before = rt.runtime.info(&id).await.unwrap();
    let second = rt.runtime.create(&id, &sh("echo other")).await;
    assert!(matches!(second, Err(Error::AlreadyExists(ref taken)) if *taken == id), "{second:?}");
    let after = rt.runtime.info(&id).await.unwrap();
    assert_eq!((after.status, after.pid, &after.spec.args), (Status::Running, before.pid, &before.spec.args));
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn a_new_process_has_only_stdio_open_and_stdin_is_empty() {
    let rt = TestRuntime::new("fds");
    // `ls /proc/1/fd` lists the shell's (pid 1's) descriptors, not those of `ls`.
    let (exit, stdout, stderr) = rt.run("fds", sh("ls /proc/1/fd; cat; echo end")).await;
    assert_eq!(exit, ExitStatus::Code(0), "{stderr}");
    assert_eq!(stdout, "0\n1\n2\nend\n", "only fds 0-2 are inherited (CVE-2024-21626 class)");
}

#[tokio::test]
async fn true_runs_create_to_destroy_and_reports_its_latency() {
    let rt = TestRuntime::new("latency");
    let mut times = Vec::new();
    for i in 0..10 {
        let id = ContainerId::new(format!("true-{i}")).unwrap();
        let started = Instant::now();
        rt.runtime.create(&id, &ContainerSpec::new(rootfs(), vec!["/bin/true".into()])).await.unwrap();
        rt.runtime.start(&id).await.unwrap();
        let exit = rt.runtime.wait(&id).await.unwrap();
        rt.runtime.destroy(&id).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(exit, ExitStatus::Code(0));
    }
    times.sort();
    eprintln!("create+start+wait+destroy of /bin/true: median {:?}, min {:?}, max {:?}", times[5], times[0], times[9]);
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn memory_limit_is_enforced_by_the_oom_killer() {
    let rt = TestRuntime::new("memory");
    let limited = |bs: &str| {
        let mut spec = ContainerSpec::new(
            rootfs(),
            vec!["/bin/dd".into(), "if=/dev/zero".into(), "of=/dev/null".into(), format!("bs={bs}"), "count=1".into()],
        );
        spec.limits = Limits { memory_bytes: Some(32 << 20), cpu_shares: Some(256), pids: Some(64) };
        spec
    };
    let (exit, _, _) = rt.run("within", limited("4M")).await;
    assert_eq!(exit, ExitStatus::Code(0), "a process within the limit runs");

    let id = ContainerId::new("over").unwrap();
    rt.runtime.create(&id, &limited("96M")).await.unwrap();
    let result = rt.runtime.run(&id).await.unwrap();
    assert_eq!(result.exit, ExitStatus::Signal(9), "over the limit: OOM-killed");
    let info = rt.runtime.info(&id).await.unwrap();
    assert_eq!(info.status, Status::Stopped);
    assert!(info.usage.oom_kills.unwrap_or(0) >= 1, "the cgroup counts the OOM kill: {:?}", info.usage);
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn the_container_sees_only_its_own_processes() {
    let rt = TestRuntime::new("pidns");
    let (exit, stdout, _) = rt.run("ps", sh("echo $$; ls /proc | grep -c '^[0-9]'; ps -o pid,comm")).await;
    assert_eq!(exit, ExitStatus::Code(0));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1", "the shell is pid 1 of its own pid namespace");
    let visible: usize = lines[1].parse().unwrap();
    assert!(visible <= 4, "only the container's processes are in /proc: {stdout}");
    assert!(lines.len() <= 2 + 1 + 4 && !stdout.contains("hearth"), "ps shows no host process: {stdout}");
}

#[tokio::test]
async fn container_root_is_not_host_root() {
    let rt = TestRuntime::new("userns");
    let id = ContainerId::new("root").unwrap();
    let spec = as_root(sh("cat /proc/self/uid_map; id -u; echo ready; sleep 30"));
    rt.runtime.create(&id, &spec).await.unwrap();
    rt.runtime.start(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stdout = loop {
        let stdout = String::from_utf8(rt.runtime.output(&id).await.unwrap().0).unwrap();
        if stdout.contains("ready") || Instant::now() > deadline {
            break stdout;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(stdout.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536", "0", "ready"]);
    let info = rt.runtime.info(&id).await.unwrap();
    assert_eq!(info.status, Status::Running);
    let host_status = std::fs::read_to_string(format!("/proc/{}/status", info.pid.unwrap())).unwrap();
    let uids = status_field(&host_status, "Uid:");
    assert!(uids.split_whitespace().all(|u| u == "100000"), "container root is host uid 100000: {uids}");
    rt.runtime.kill(&id, 9).await.unwrap();
    assert_eq!(rt.runtime.wait(&id).await.unwrap(), ExitStatus::Signal(9));
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn even_container_root_cannot_mount_unshare_or_load_modules() {
    let rt = TestRuntime::new("denied");
    let script = "mount -t tmpfs tmpfs /mnt && echo MOUNTED; \
                  unshare -n true && echo UNSHARED; \
                  echo junk > /tmp/m.ko; insmod /tmp/m.ko && echo LOADED; \
                  echo done";
    let (exit, stdout, stderr) = rt.run("denied", as_root(sh(script))).await;
    assert_eq!(exit, ExitStatus::Code(0));
    assert_eq!(stdout, "done\n", "nothing succeeded; stderr: {stderr}");
    // busybox words mount's EPERM as "permission denied (are you root?)".
    assert!(stderr.contains("mount: permission denied"), "mount is refused: {stderr}");
    assert!(stderr.contains("unshare(0x40000000): Operation not permitted"), "unshare is refused: {stderr}");
    assert!(stderr.contains("insmod: can't insert '/tmp/m.ko': Operation not permitted"), "{stderr}");
}

#[tokio::test]
async fn a_non_root_process_has_no_effective_capabilities() {
    let rt = TestRuntime::new("caps");
    let script = "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status";
    let (exit, user, _) = rt.run("user", sh(script)).await;
    assert_eq!(exit, ExitStatus::Code(0));
    let (_, root, _) = rt.run("root", as_root(sh(script))).await;
    let mask = |status: &str, field: &str| u64::from_str_radix(&status_field(status, field), 16).unwrap();
    assert_eq!(mask(&user, "CapEff:"), 0);
    assert_eq!(mask(&user, "CapPrm:"), 0);
    assert_eq!(mask(&user, "CapBnd:"), GARDEN_CAPS);
    assert_eq!(mask(&root, "CapEff:"), GARDEN_CAPS, "root in the container has Garden's 14, no more");
    assert_eq!(mask(&root, "CapBnd:"), GARDEN_CAPS);
    for status in [&user, &root] {
        assert_eq!(status_field(status, "NoNewPrivs:"), "1");
        assert_eq!(status_field(status, "Seccomp:"), "2", "a seccomp filter is on");
    }
}

#[tokio::test]
async fn the_rootfs_is_read_only_and_host_paths_are_masked() {
    let rt = TestRuntime::new("readonly");
    // The masked files this kernel has (it may lack /proc/kcore or /proc/sched_debug).
    let masked: Vec<&str> = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"]
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|content| !content.is_empty()))
        .collect();
    assert!(!masked.is_empty(), "the host has none of the masked files to compare with");
    let reads: String = masked.iter().map(|p| format!("wc -c < {p}; ")).collect();
    let script = format!(
        "touch /etc/x && echo WROTE-ROOTFS; touch /tmp/x && echo wrote-tmp; \
         echo 1 > /proc/sys/kernel/hostname && echo WROTE-PROC-SYS; \
         {reads} ls /sys/firmware | wc -l; echo done"
    );
    let (exit, stdout, stderr) = rt.run("readonly", as_root(sh(&script))).await;
    assert_eq!(exit, ExitStatus::Code(0), "{stderr}");
    let expected = format!("wrote-tmp\n{}0\ndone\n", "0\n".repeat(masked.len()));
    assert_eq!(stdout, expected, "masked files read empty; stderr: {stderr}");
    assert!(stderr.contains("touch: /etc/x: Read-only file system"), "{stderr}");
    assert!(stderr.contains("can't create /proc/sys/kernel/hostname: Read-only file system"), "{stderr}");
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_behind() {
    let rt = TestRuntime::new("failed");
    let id = ContainerId::new("missing-program").unwrap();
    let spec = ContainerSpec::new(rootfs(), vec!["/bin/no-such-program".into()]);
    let err = rt.runtime.create(&id, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Helper { op: "create", .. }), "{err}");
    assert_eq!(rt.leftovers(), Vec::<String>::new());
    assert!(rt.runtime.lookup(&id).await.unwrap().is_none());

    let missing_rootfs = ContainerSpec::new(rt.root.join("nowhere"), vec!["/bin/true".into()]);
    assert!(matches!(rt.runtime.create(&id, &missing_rootfs).await, Err(Error::InvalidSpec(_))));
    // A rootfs behind a 0700 directory cannot be mounted from inside the user namespace.
    let private = rt.root.join("private");
    std::fs::create_dir_all(private.join("rootfs")).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hidden_rootfs = ContainerSpec::new(private.join("rootfs"), vec!["/bin/true".into()]);
    let err = rt.runtime.create(&id, &hidden_rootfs).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidSpec(why) if why.contains("o+x")), "{err}");
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn containers_are_found_again_after_a_restart() {
    let rt = TestRuntime::new("restart");
    let first = rt.reopen();
    let id = ContainerId::new("long").unwrap();
    first.create(&id, &sh("trap 'echo got-term; exit 7' TERM; sleep 30 & wait")).await.unwrap();
    let created = ContainerId::new("not-started").unwrap();
    first.create(&created, &sh("echo late")).await.unwrap();
    first.start(&id).await.unwrap();
    assert!(matches!(first.start(&id).await, Err(Error::IllegalTransition { status: Status::Running, .. })));
    drop(first); // the server goes away; the containers and their keepers stay

    let restarted = &rt.runtime;
    assert_eq!(restarted.list().await.unwrap(), vec![id.clone(), created.clone()]);
    let info = restarted.info(&id).await.unwrap();
    assert_eq!(info.status, Status::Running);
    assert!(info.pid.is_some() && info.usage.memory_bytes.is_some() && info.usage.cpu_nanos.is_some(), "{info:?}");
    assert_eq!(restarted.info(&created).await.unwrap().status, Status::Created);

    let result = restarted.run(&created).await.unwrap();
    assert_eq!((result.exit, result.stdout), (ExitStatus::Code(0), b"late\n".to_vec()));
    restarted.kill(&id, 15).await.unwrap();
    assert_eq!(restarted.wait(&id).await.unwrap(), ExitStatus::Code(7), "the app's SIGTERM handler ran");
    assert_eq!(restarted.output(&id).await.unwrap().0, b"got-term\n");
    for id in [&id, &created] {
        restarted.destroy(id).await.unwrap();
        restarted.destroy(id).await.unwrap();
    }
    assert!(restarted.list().await.unwrap().is_empty());
    assert!(matches!(restarted.info(&id).await, Err(Error::NotFound(_))));
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_destroy_100_containers_leaves_nothing() {
    let rt = TestRuntime::new("hundred");
    let started = Instant::now();
    let mut ids = HashSet::new();
    for i in 0..100 {
        let id = ContainerId::new(format!("c-{i}")).unwrap();
        rt.runtime.create(&id, &sh("sleep 60")).await.unwrap();
        // A third never started, a third running when destroyed, a third killed and reaped.
        match i % 3 {
            0 => {}
            1 => rt.runtime.start(&id).await.unwrap(),
            _ => {
                rt.runtime.start(&id).await.unwrap();
                rt.runtime.kill(&id, 9).await.unwrap();
                assert_eq!(rt.runtime.wait(&id).await.unwrap(), ExitStatus::Signal(9));
            }
        }
        ids.insert(id);
    }
    assert_eq!(rt.runtime.list().await.unwrap().len(), 100);
    for id in &ids {
        rt.runtime.destroy(id).await.unwrap();
    }
    for id in ids.iter().take(5) {
        rt.runtime.destroy(id).await.unwrap();
    }
    eprintln!("100 containers created and destroyed in {:?}", started.elapsed());
    assert_eq!(rt.leftovers(), Vec::<String>::new());
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Waits up to `secs` for the container to exit.
async fn exit_within(rt: &TestRuntime, id: &ContainerId, secs: u64) -> Option<ExitStatus> {
    tokio::time::timeout(Duration::from_secs(secs), rt.runtime.wait(id)).await.ok().map(|r| r.unwrap())
}

#[tokio::test]
async fn with_an_init_a_stop_signal_reaches_the_app_and_its_graceful_exit_is_waited_for() {
    let rt = TestRuntime::new("init");
    // Without an init the app is PID 1, and the kernel spares it a SIGTERM it has no handler for.
    let bare = ContainerId::new("bare").unwrap();
    rt.runtime.create(&bare, &sh("exec sleep 1000")).await.unwrap();
    rt.runtime.start(&bare).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.runtime.kill(&bare, 15).await.unwrap();
    assert_eq!(exit_within(&rt, &bare, 2).await, None, "PID 1 ignores SIGTERM");
    rt.runtime.kill(&bare, 9).await.unwrap();
    assert_eq!(rt.runtime.wait(&bare).await.unwrap(), ExitStatus::Signal(9));
    rt.runtime.destroy(&bare).await.unwrap();

    // With one, SIGTERM reaches every process: a launcher shell dies of it at once, the app
    // it started finishes its graceful shutdown, and only then does the container end.
    let app = "trap 'sleep 0.5; echo shut down gracefully; exit 0' TERM; echo ready; while :; do sleep 0.05; done";
    let mut spec = sh(&format!("sh -c \"{app}\"; echo launcher outlived its app"));
    spec.init = true;
    let id = ContainerId::new("init").unwrap();
    rt.runtime.create(&id, &spec).await.unwrap();
    rt.runtime.start(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&rt.runtime.output(&id).await.unwrap().0).contains("ready") {
        assert!(Instant::now() < deadline, "the app never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rt.runtime.kill(&id, 15).await.unwrap();
    let exit = exit_within(&rt, &id, 5).await;
    assert_eq!(exit, Some(ExitStatus::Code(128 + 15)), "the launcher's death by SIGTERM, as an exit code");
    let stdout = String::from_utf8(rt.runtime.output(&id).await.unwrap().0).unwrap();
    assert_eq!(stdout, "ready\nshut down gracefully\n");
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}
