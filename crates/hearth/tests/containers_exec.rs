//! Processes in running containers (`Runtime::exec`, `attach`) and tar streams in and out
//! (`stream_in`, `stream_out`), through the real binary as helper. Needs root and
//! Debian's `busybox-static`.

#[path = "common/container_fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::time::{Duration, Instant};

use fixtures::{TestRuntime, rootfs, sh};
use hearth_containers::{
    ContainerId, ContainerSpec, Error, ExitStatus, Process, ProcessId, ProcessSpec, Runtime, Status, User, WindowSize,
    cgroup,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Garden's 14 capabilities as the kernel's bit mask (CapBnd in /proc/PID/status).
const GARDEN_CAPS: u64 = 0xa80425fb;

fn sleeper() -> ContainerSpec {
    ContainerSpec::new(rootfs(), vec!["/bin/sleep".into(), "600".into()])
}

/// A created and started container running `spec`.
async fn running(rt: &TestRuntime, name: &str, spec: ContainerSpec) -> ContainerId {
    let id = ContainerId::new(name).unwrap();
    rt.runtime.create(&id, &spec).await.unwrap();
    rt.runtime.start(&id).await.unwrap();
    id
}

fn cmd(script: &str) -> ProcessSpec {
    ProcessSpec::new(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// Reads both output streams to their end and waits for the exit status.
async fn finish(mut p: Process) -> (ExitStatus, String, String) {
    let (out, err) = (p.take_stdout().unwrap(), p.take_stderr().unwrap());
    let (out, err) = tokio::join!(out.read_all(), err.read_all());
    let exit = p.wait().await.unwrap();
    (exit, String::from_utf8(out.unwrap()).unwrap(), String::from_utf8(err.unwrap()).unwrap())
}

async fn run(runtime: &Runtime, id: &ContainerId, spec: ProcessSpec) -> (ExitStatus, String, String) {
    finish(runtime.exec(id, spec).await.unwrap()).await
}

fn field(status: &str, name: &str) -> String {
    status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{name} in {status}")).trim().into()
}

#[tokio::test]
async fn exec_returns_output_and_exit_codes() {
    let rt = TestRuntime::new("echo");
    let mut spec = sh("sleep 600");
    spec.env.push("FROM_CONTAINER=yes".into());
    spec.cwd = "/home/vcap".into();
    let id = running(&rt, "echo", spec).await;

    let (exit, out, err) = run(&rt.runtime, &id, ProcessSpec::new(vec!["echo".into(), "hello".into()])).await;
    assert_eq!((exit, out.as_str(), err.as_str()), (ExitStatus::Code(0), "hello\n", ""));

    let mut spec = cmd("echo $FROM_CONTAINER $EXTRA; pwd; id -u; echo oops >&2; exit 3");
    spec.env = vec!["EXTRA=added".into()];
    let (exit, out, err) = run(&rt.runtime, &id, spec).await;
    assert_eq!(exit, ExitStatus::Code(3));
    assert_eq!(out, "yes added\n/home/vcap\n2000\n", "the container's env, cwd and user by default");
    assert_eq!(err, "oops\n");

    assert_eq!(run(&rt.runtime, &id, cmd("echo $HOME")).await.1, "/home/vcap\n", "HOME from /etc/passwd");
    let mut spec = cmd("pwd; id -u; echo $HOME");
    spec.cwd = Some("/tmp".into());
    spec.user = Some(User { uid: 0, gid: 0 });
    assert_eq!(run(&rt.runtime, &id, spec).await.1, "/tmp\n0\n/root\n");

    let err = rt.runtime.exec(&id, ProcessSpec::new(vec!["/bin/no-such-program".into()])).await.err().unwrap();
    assert!(matches!(&err, Error::Helper { op: "exec", .. }), "{err}");
    assert_eq!(rt.runtime.processes(&id).await.unwrap().len(), 4, "a process that never started leaves nothing");

    let mut named = cmd("true");
    named.id = Some(ProcessId::new("task-1").unwrap());
    run(&rt.runtime, &id, named.clone()).await;
    assert!(matches!(rt.runtime.exec(&id, named).await, Err(Error::ProcessExists { .. })));
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn stdin_reaches_the_process_and_closing_it_is_end_of_file() {
    let rt = TestRuntime::new("stdin");
    let id = running(&rt, "stdin", sleeper()).await;
    let mut spec = ProcessSpec::new(vec!["cat".into()]);
    spec.stdin = true;
    let mut p = rt.runtime.exec(&id, spec).await.unwrap();
    let mut stdin = p.take_stdin().unwrap();
    stdin.write_all(b"line one\n").await.unwrap();
    stdin.write_all(&vec![b'x'; 200_000]).await.unwrap(); // more than any pipe buffer
    drop(stdin);
    let (exit, out, _) = finish(p).await;
    assert_eq!(exit, ExitStatus::Code(0));
    assert_eq!(out.len(), 9 + 200_000);
    assert!(out.starts_with("line one\nxxx"));

    let (_, out, _) = run(&rt.runtime, &id, cmd("cat; echo after")).await;
    assert_eq!(out, "after\n", "without stdin the process reads /dev/null");
    rt.runtime.destroy(&id).await.unwrap();
}

#[tokio::test]
async fn a_tty_has_the_requested_size_and_follows_resizes() {
    let rt = TestRuntime::new("tty");
    let id = running(&rt, "tty", sleeper()).await;
    let mut spec = cmd("tty; stat -c %u $(tty); stty size; echo to-stderr >&2; read line; stty size; echo got $line");
    spec.tty = Some(WindowSize { cols: 100, rows: 30 });
    spec.stdin = true;
    let mut p = rt.runtime.exec(&id, spec).await.unwrap();
    let mut stdout = p.take_stdout().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("to-stderr") && Instant::now() < deadline {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf)).await.unwrap().unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    p.resize(WindowSize { cols: 120, rows: 40 }).await.unwrap();
    let mut stdin = p.take_stdin().unwrap();
    stdin.write_all(b"hi\n").await.unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.unwrap();
    seen.extend_from_slice(&rest);
    let exit = p.wait().await.unwrap();
    let text = String::from_utf8(seen).unwrap().replace('\r', "");
    let lines: Vec<&str> = text.lines().filter(|l| *l != "hi").collect();
    assert_eq!(exit, ExitStatus::Code(0), "{text}");
    assert!(lines[0].starts_with("/dev/pts/"), "the process has a terminal: {text}");
    assert_eq!(lines[1], "2000", "the terminal belongs to the user: {text}");
    assert_eq!(&lines[2..], ["30 100", "to-stderr", "40 120", "got hi"], "stderr merged into stdout: {text}");
    assert_eq!(p.take_stderr().unwrap().read_all().await.unwrap(), b"");
    rt.runtime.destroy(&id).await.unwrap();
}

#[tokio::test]
async fn a_signal_ends_an_exec_d_process() {
    let rt = TestRuntime::new("signal");
    let id = running(&rt, "signal", sleeper()).await;
    let mut p = rt.runtime.exec(&id, ProcessSpec::new(vec!["sleep".into(), "300".into()])).await.unwrap();
    let started = Instant::now();
    p.signal(15).await.unwrap();
    assert_eq!(p.wait().await.unwrap(), ExitStatus::Signal(15));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = p.signal(15).await.unwrap_err();
    assert!(err.to_string().contains("has ended"), "{err}");
    assert!(p.signal(0).await.is_err() && p.signal(99).await.is_err());
    assert_eq!(rt.runtime.info(&id).await.unwrap().status, Status::Running, "the container runs on");
    rt.runtime.destroy(&id).await.unwrap();
}

#[tokio::test]
async fn an_exec_d_process_gets_the_containers_security_floor() {
    let rt = TestRuntime::new("floor");
    let id = running(&rt, "floor", sleeper()).await;
    let script = "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
                  ls /proc | grep -c '^[0-9]'; \
                  unshare -n true && echo UNSHARED; cat /proc/self/uid_map";
    let (exit, user, err) = run(&rt.runtime, &id, cmd(script)).await;
    assert_eq!(exit, ExitStatus::Code(0), "{err}");
    let mask = |s: &str, f: &str| u64::from_str_radix(&field(s, f), 16).unwrap();
    assert_eq!((mask(&user, "CapEff:"), mask(&user, "CapPrm:")), (0, 0), "vcap has no capabilities: {user}");
    assert_eq!(mask(&user, "CapBnd:"), GARDEN_CAPS);
    assert_eq!(field(&user, "NoNewPrivs:"), "1");
    assert_eq!(field(&user, "Seccomp:"), "2", "the container's seccomp filter applies to exec'd processes");
    let rest: Vec<&str> = user.lines().skip(5).collect();
    let visible: usize = rest[0].parse().unwrap();
    assert!(visible <= 4, "only the container's processes are visible: {user}");
    assert!(!user.contains("UNSHARED") && err.contains("Operation not permitted"), "{err}");
    assert_eq!(rest[1].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"], "the container's userns");

    let mut as_root = cmd("grep -E '^(CapEff|Seccomp):' /proc/self/status");
    as_root.user = Some(User { uid: 0, gid: 0 });
    let (_, root, _) = run(&rt.runtime, &id, as_root).await;
    assert_eq!(mask(&root, "CapEff:"), GARDEN_CAPS, "container root has Garden's 14, no more");
    assert_eq!(field(&root, "Seccomp:"), "2");

    // The process is in the container's cgroup (so its limits apply) and runs as host uid 102000.
    let mut p = rt.runtime.exec(&id, ProcessSpec::new(vec!["sleep".into(), "60".into()])).await.unwrap();
    let pid = p.host_pid().unwrap();
    let cgroup_path = format!("/{}/floor", rt.cgroup_parent);
    let dirs: Vec<_> = cgroup::dirs(Path::new(&cgroup_path)).into_iter().filter(|d| d.exists()).collect();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|l| l == pid.to_string()), "exec'd pid {pid} is in {}", dir.display());
    }
    // Only fds 0-2 are open in it (the CVE-2024-21626 class of leaks).
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(field(&status, "Uid:").split_whitespace().all(|u| u == "102000"), "{status}");
    p.signal(9).await.unwrap();
    assert_eq!(p.wait().await.unwrap(), ExitStatus::Signal(9));
    rt.runtime.destroy(&id).await.unwrap();
}

#[tokio::test]
async fn a_restarted_runtime_attaches_to_output_and_exit_status() {
    let rt = TestRuntime::new("attach");
    let first = rt.reopen();
    let id = ContainerId::new("attach").unwrap();
    first.create(&id, &sleeper()).await.unwrap();
    first.start(&id).await.unwrap();
    let mut spec = cmd("echo one; echo err-one >&2; sleep 1; echo two; exit 4");
    spec.stdin = true;
    let p = first.exec(&id, spec).await.unwrap();
    let process = p.id().clone();
    drop(p);
    let mut tty = cmd("trap 'stty size; exit 5' WINCH; echo ready; while true; do sleep 0.1; done");
    tty.tty = Some(WindowSize { cols: 80, rows: 24 });
    let mut p = first.exec(&id, tty).await.unwrap();
    let mut ready = [0u8; 5];
    p.take_stdout().unwrap().read_exact(&mut ready).await.unwrap();
    let tty_process = p.id().clone();
    drop(p);
    drop(first); // the server goes away; the processes and their keepers stay

    let restarted = &rt.runtime;
    let mut processes = vec![process.clone(), tty_process.clone()];
    processes.sort();
    assert_eq!(restarted.processes(&id).await.unwrap(), processes);
    // Resizing the terminal of a process started before the restart.
    let attached = restarted.attach(&id, &tty_process).await.unwrap();
    attached.resize(WindowSize { cols: 50, rows: 20 }).await.unwrap();
    let (exit, out, _) = finish(attached).await;
    assert_eq!((exit, out.replace('\r', "")), (ExitStatus::Code(5), "ready\n20 50\n".to_string()));
    let mut attached = restarted.attach(&id, &process).await.unwrap();
    assert!(attached.take_stdin().is_none(), "stdin belonged to the server that started the process");
    let (exit, out, err) = finish(attached).await;
    assert_eq!((exit, out.as_str(), err.as_str()), (ExitStatus::Code(4), "one\ntwo\n", "err-one\n"));
    // Attaching again after the end still gets everything.
    let (exit, out, _) = finish(restarted.attach(&id, &process).await.unwrap()).await;
    assert_eq!((exit, out.as_str()), (ExitStatus::Code(4), "one\ntwo\n"));
    let missing = ProcessId::new("nope").unwrap();
    assert!(matches!(restarted.attach(&id, &missing).await, Err(Error::ProcessNotFound { .. })));
    restarted.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn exec_into_a_stopped_created_or_unknown_container_is_refused() {
    let rt = TestRuntime::new("refused");
    let echo = || ProcessSpec::new(vec!["echo".into()]);
    let unknown = ContainerId::new("unknown").unwrap();
    assert!(matches!(rt.runtime.exec(&unknown, echo()).await, Err(Error::NotFound(_))));
    let created = ContainerId::new("created").unwrap();
    rt.runtime.create(&created, &sleeper()).await.unwrap();
    let err = rt.runtime.exec(&created, echo()).await.err().unwrap();
    assert!(matches!(err, Error::IllegalTransition { status: Status::Created, .. }), "{err}");
    let stopped = running(&rt, "stopped", sh("true")).await;
    rt.runtime.wait(&stopped).await.unwrap();
    let err = rt.runtime.exec(&stopped, echo()).await.err().unwrap();
    assert!(matches!(err, Error::IllegalTransition { status: Status::Stopped, .. }), "{err}");
    assert!(err.to_string().contains("Stopped"), "{err}");
    let mut bad = echo();
    bad.cwd = Some("relative".into());
    let running_id = running(&rt, "running", sleeper()).await;
    assert!(matches!(rt.runtime.exec(&running_id, bad).await, Err(Error::InvalidSpec(_))));
    assert!(rt.runtime.processes(&running_id).await.unwrap().is_empty(), "a refused exec leaves nothing");
    for id in [&created, &stopped, &running_id] {
        rt.runtime.destroy(id).await.unwrap();
    }
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn destroy_ends_exec_d_processes_and_their_keepers() {
    let rt = TestRuntime::new("destroy");
    let id = running(&rt, "destroy", sleeper()).await;
    let mut keep = Vec::new();
    for tty in [None, Some(WindowSize { cols: 80, rows: 24 })] {
        let mut spec = cmd("trap '' TERM; sleep 300");
        spec.tty = tty;
        spec.stdin = true;
        keep.push(rt.runtime.exec(&id, spec).await.unwrap());
    }
    let started = Instant::now();
    rt.runtime.destroy(&id).await.unwrap();
    rt.runtime.destroy(&id).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    for p in keep {
        let pid = p.host_pid().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z"), "exec'd process {pid} is gone: {stat}");
    }
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn exec_latency_of_true() {
    let rt = TestRuntime::new("latency");
    let id = running(&rt, "latency", sleeper()).await;
    let (mut times, mut starts) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let started = Instant::now();
        let mut p = rt.runtime.exec(&id, ProcessSpec::new(vec!["/bin/true".into()])).await.unwrap();
        starts.push(started.elapsed());
        assert_eq!(p.wait().await.unwrap(), ExitStatus::Code(0));
        times.push(started.elapsed());
    }
    times.sort();
    starts.sort();
    eprintln!(
        "exec of /bin/true, exec() + wait(), 30 runs: median {:?} (min {:?}, max {:?}); exec() alone: median {:?}",
        times[15], times[0], times[29], starts[15]
    );
    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.leftovers(), Vec::<String>::new());
}

/// The CVE-2019-5736 class: a container's root watches every process in its pid namespace
/// and tries to write through `/proc/PID/exe` while the runtime execs processes into it
/// (including `/proc/self/exe` itself); the host's runtime binary stays as it was.
#[tokio::test]
async fn container_root_cannot_overwrite_the_runtime_binary_through_proc_exe() {
    let binary = Path::new(env!("CARGO_BIN_EXE_hearth"));
    let before = std::fs::read(binary).unwrap();
    let rt = TestRuntime::new("proc-self-exe");
    let mut spec = sh("while :; do for p in /proc/[0-9]*; do \
                       (echo pwned >> $p/exe) 2>/dev/null && echo \"WROTE $p $(readlink $p/exe)\" >> /tmp/log; \
                       done; done");
    spec.user = User { uid: 0, gid: 0 };
    let id = running(&rt, "proc-self-exe", spec).await;
    let mut exits = Vec::new();
    for i in 0..15 {
        let mut process =
            if i % 3 == 0 { ProcessSpec::new(vec!["/proc/self/exe".into(), "--version".into()]) } else { cmd("true") };
        process.user = Some(User { uid: 0, gid: 0 });
        match rt.runtime.exec(&id, process).await {
            Ok(p) => exits.push(finish(p).await.0),
            Err(e) => exits.push(ExitStatus::Code(if e.to_string().is_empty() { -1 } else { -2 })),
        }
    }
    let (_, log, _) = run(&rt.runtime, &id, cmd("cat /tmp/log 2>/dev/null; true")).await;
    rt.runtime.destroy(&id).await.unwrap();
    assert!(!log.contains("WROTE"), "a write through /proc/PID/exe succeeded:\n{log}");
    assert!(std::fs::read(binary).unwrap() == before, "the runtime binary changed");
    assert!(exits.contains(&ExitStatus::Code(0)), "no exec ran at all: {exits:?}");
}
