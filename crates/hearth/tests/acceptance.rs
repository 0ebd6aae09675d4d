//! The acceptance suite (Hearth's CATs), as root: one fresh `hearth server` driven only
//! through the `hearth` binary and plain HTTP, as a newcomer would. It opens the sample
//! app the first start pushed, then pushes a compiled binary, a static site, a python app,
//! a node app and an image from a local registry; reaches each through the router by host
//! name; scales one to three instances and sees
//! three `CF_INSTANCE_INDEX` answers; kills an instance's process and sees it replaced;
//! reads recent and streamed logs (app and `RTR` lines) and the instances' memory use;
//! restarts the server and finds every app answering; deletes the apps and finds nothing
//! left behind — no container, process, mount, cgroup, package or droplet.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server, cgroup_parent, instances, json_of, through_router, until_router};
use common::registry::{Registry, busybox_layer};
use serde_json::json;

const DOMAIN: &str = "apps.test.internal";

/// A small web server in Rust, compiled by the test with the toolchain that runs it: it
/// answers with its instance index and prints a line per request.
const BINARY_APP: &str = r#"
use std::io::{Read, Write};
fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let index = std::env::var("CF_INSTANCE_INDEX").unwrap_or_default();
    let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
    println!("binary app listening on {port}");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        let request = String::from_utf8_lossy(&buf[..n]);
        let line = request.lines().next().unwrap_or("");
        println!("served {line}");
        let body = if line.split_whitespace().nth(1) == Some("/env") {
            let tmp = std::env::var("TMPDIR").unwrap_or_default();
            let writable = std::fs::write(format!("{tmp}/probe"), "x").is_ok();
            let names = ["CF_INSTANCE_IP", "CF_INSTANCE_INTERNAL_IP", "CF_INSTANCE_PORT", "CF_INSTANCE_ADDR",
                         "CF_INSTANCE_PORTS", "TMPDIR"];
            let mut out: String = names.iter().map(|k| format!("{k}={}\n", std::env::var(k).unwrap_or_default())).collect();
            out.push_str(&format!("TMP_WRITABLE={writable}\n"));
            out
        } else {
            format!("binary app instance {index}\n")
        };
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    }
}
"#;

/// A python app as the python buildpack runs it (`python3 app.py`), on the standard library.
const PYTHON_APP: &str = r#"
import http.server, os, socketserver

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("python app instance %s\n" % os.environ["CF_INSTANCE_INDEX"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(http.server.HTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # no host name lookup

Server(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// A node app as the nodejs buildpack runs it (`scripts.start`), on node's standard library.
const NODE_PACKAGE: &str = r#"{"name": "node-app", "version": "1.0.0", "scripts": {"start": "node server.js"}}"#;
const NODE_APP: &str = r#"
require("http").createServer((req, res) => {
  res.end(`node app instance ${process.env.CF_INSTANCE_INDEX}\n`);
}).listen(process.env.PORT);
"#;

/// A web process that serves what its sidecar writes (both in one container).
const SIDECAR_MANIFEST: &str = r#"
applications:
- name: sided
  path: .
  buildpacks: [binary_buildpack]
  command: mkdir -p www && exec busybox httpd -f -p $PORT -h www
  sidecars:
  - name: writer
    process_types: [web]
    command: while true; do mkdir -p www && echo "written by the sidecar of instance $CF_INSTANCE_INDEX" > www/index.html; sleep 1; done
"#;

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The binary app's directory: the compiled `server` and nothing else.
fn binary_app(work: &Path) -> PathBuf {
    let dir = work.join("bin-app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(work.join("server.rs"), BINARY_APP).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status =
        Command::new(rustc).args(["-O", "-o"]).arg(dir.join("server")).arg(work.join("server.rs")).status().unwrap();
    assert!(status.success(), "the binary app compiles");
    dir
}

/// GET `path` through the router with `Host: host`: the body of a 200.
fn get_path(addr: &str, host: &str, path: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response =
            reqwest::Client::new().get(format!("http://{addr}{path}")).header("host", host).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path} on {host}");
        response.text().await.unwrap()
    })
}

/// Processes named `comm` in this server's container cgroups.
fn app_processes(server: &Server, comm: &str) -> BTreeSet<u32> {
    let parent = format!("/{}/", cgroup_parent(&server.root));
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            name.trim() == comm && cgroups.lines().any(|l| l.split(':').nth(2).is_some_and(|p| p.starts_with(&parent)))
        })
        .collect()
}

/// Asks the router for `/` until `want` instance answers (by body) were seen.
fn instance_answers(addr: &str, host: &str, want: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while seen.len() < want {
        let (status, body) = through_router(addr, host);
        if status == 200 {
            seen.insert(body);
        }
        assert!(Instant::now() < deadline, "only {seen:?} answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

/// Polls `hearth app NAME --json` until `done` holds of its instances (at most 90 s).
fn until_instances(server: &Server, name: &str, what: &str, done: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let summary = json_of(&server.hearth(&["app", name, "--json"]).ok());
        let list = instances(&summary);
        if done(&list) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {list:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits up to 60 s for `done`.
fn until(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn running_count(list: &[serde_json::Value]) -> usize {
    list.iter().filter(|i| i["state"] == "RUNNING").count()
}

/// What this server leaves on the machine: container records, processes in its cgroups,
/// mounts under its directory, cgroups under its parent, package and droplet blobs.
fn leftovers(server: &Server) -> Vec<String> {
    let mut left = Vec::new();
    let containers = json_of(&server.hearth(&["containers", "list", "--json"]).ok());
    for c in containers.as_array().unwrap() {
        left.push(format!("container {}", c["id"]));
    }
    let parent = format!("/{}/", cgroup_parent(&server.root));
    for pid in std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cgroups.lines().any(|l| l.split(':').nth(2).is_some_and(|p| p.starts_with(&parent))) {
            left.push(format!("process {pid}"));
        }
    }
    let root = server.root.to_string_lossy().to_string();
    for mount in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        if let Some(point) = mount.split(' ').nth(4).filter(|m| m.starts_with(&root)) {
            left.push(format!("mount {point}"));
        }
    }
    for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = controller.path().join(cgroup_parent(&server.root));
        for child in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if child.path().is_dir() {
                left.push(format!("cgroup {}", child.path().display()));
            }
        }
    }
    for ns in ["packages", "droplets"] {
        let dir = server.root.join("data/blobs").join(ns);
        for shard in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                left.push(format!("{ns} blob {}", blob.path().display()));
            }
        }
    }
    left
}

#[test]
fn a_newcomer_pushes_reaches_scales_restarts_and_deletes_apps() {
    let work = std::env::temp_dir().join(format!("hearth-acceptance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let registry = Registry::start(&work.join("registry"));
    let web = "mkdir -p /tmp/www && echo image app instance $CF_INSTANCE_INDEX > /tmp/www/index.html \
               && exec busybox httpd -f -p 8080 -h /tmp/www";
    let image = registry.push(
        "acceptance/web",
        "1",
        &busybox_layer(),
        json!({"architecture": "amd64", "os": "linux",
               "config": {"Cmd": ["/bin/sh", "-c", web], "ExposedPorts": {"8080/tcp": {}}}}),
    );
    let mut server = Server::start_as_newcomer(&[
        "--node-dir",
        "{root}/node",
        "--insecure-registry",
        &registry.host,
        "--app-domain",
        DOMAIN,
    ]);
    let addr = server.url.trim_start_matches("http://").to_string();
    server.hearth(&["login", "-a", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]).ok();

    // The first start pushed a sample app a newcomer can open at once, and said where.
    let (status, body) = until_router(&addr, &format!("hello.{DOMAIN}"), "the sample app", |s, _| s == 200);
    assert!(status == 200 && body.contains("Hello from Hearth"), "{body}");
    let banner = format!("Your first app is being pushed: http://hello.{DOMAIN}:");
    assert!(server.log().contains(&banner), "{}", server.log());
    server.hearth(&["target", "-o", "demo", "-s", "dev"]).ok();
    server.hearth(&["delete", "hello", "-f", "-r"]).ok();
    until(|| leftovers(&server).is_empty(), "the sample app deleted with nothing left");
    server.hearth(&["create-org", "acme"]).ok();
    server.hearth(&["target", "-o", "acme"]).ok();
    server.hearth(&["create-space", "dev"]).ok();
    server.hearth(&["target", "-s", "dev"]).ok();

    // Five apps of five kinds, each reached through the router by its host name.
    let bin = binary_app(&work);
    let out = server.hearth(&["push", "bin", "-p", bin.to_str().unwrap(), "-b", "binary_buildpack", "-c", "./server"]);
    assert!(out.ok().contains(&format!("bin.{DOMAIN}")), "push prints the route: {}", out.describe());
    let site = work.join("site");
    write_files(&site, &[("Staticfile", "root: public\n"), ("public/index.html", "a static site\n")]);
    server.hearth(&["push", "site", "-p", site.to_str().unwrap()]).ok();
    server.hearth(&["push", "img", "--docker-image", &image]).ok();
    let py = work.join("py");
    write_files(&py, &[("requirements.txt", ""), ("app.py", PYTHON_APP)]);
    server.hearth(&["push", "py", "-p", py.to_str().unwrap()]).ok();
    let node = work.join("node");
    write_files(&node, &[("package.json", NODE_PACKAGE), ("server.js", NODE_APP)]);
    server.hearth(&["push", "node", "-p", node.to_str().unwrap()]).ok();
    let expected = [
        ("bin", "binary app instance 0\n"),
        ("site", "a static site\n"),
        ("img", "image app instance 0\n"),
        ("py", "python app instance 0\n"),
        ("node", "node app instance 0\n"),
    ];
    for (name, body) in expected {
        let host = format!("{name}.{DOMAIN}");
        let (status, got) = until_router(&addr, &host, name, |s, _| s == 200);
        assert_eq!((status, got.as_str()), (200, body), "{name}");
    }
    // A sidecar from a manifest runs beside the web process, in its container; the app's
    // manifest gives it back.
    let sided = work.join("sided");
    write_files(&sided, &[("manifest.yml", SIDECAR_MANIFEST), ("README", "a web process and its sidecar\n")]);
    server.hearth(&["push", "-f", sided.join("manifest.yml").to_str().unwrap()]).ok();
    let (status, body) = until_router(&addr, &format!("sided.{DOMAIN}"), "the sidecar's page", |s, _| s == 200);
    assert_eq!((status, body.as_str()), (200, "written by the sidecar of instance 0\n"));
    let written = work.join("sided.yml");
    server.hearth(&["create-app-manifest", "sided", "-p", written.to_str().unwrap()]).ok();
    let manifest: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&written).unwrap()).expect("the app's manifest is YAML");
    let app = &manifest["applications"][0];
    assert_eq!(app["sidecars"][0]["name"], "writer", "{manifest}");
    assert_eq!(app["sidecars"][0]["process_types"], serde_json::json!(["web"]), "{manifest}");
    assert_eq!(app["routes"][0]["route"], format!("sided.{DOMAIN}"), "{manifest}");
    server.hearth(&["delete", "sided", "-f", "-r"]).ok();

    // The instance learns its addresses and host port once its container exists, as on Diego.
    let env = get_path(&addr, &format!("bin.{DOMAIN}"), "/env");
    let var = |name: &str| {
        env.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("{name} in {env}"))
    };
    let port: u16 = var("CF_INSTANCE_PORT").parse().unwrap_or_else(|_| panic!("a host port: {env}"));
    assert!((61000..62000).contains(&port), "{env}");
    assert!(var("CF_INSTANCE_INTERNAL_IP").starts_with("10.254."), "{env}");
    assert_eq!(var("CF_INSTANCE_ADDR"), format!("{}:{port}", var("CF_INSTANCE_IP")), "{env}");
    assert!(var("CF_INSTANCE_PORTS").contains(&format!("{{\"external\":{port},\"internal\":8080}}")), "{env}");
    assert_eq!((var("TMPDIR"), var("TMP_WRITABLE")), ("/home/vcap/tmp", "true"), "{env}");
    let apps = server.hearth(&["apps"]).ok();
    for (name, _) in expected {
        assert!(apps.lines().any(|l| l.starts_with(name) && l.contains("started")), "{name} in {apps}");
    }

    // Three instances answer with three indexes; each reports its memory use.
    server.hearth(&["scale", "bin", "-i", "3"]).ok();
    let host = format!("bin.{DOMAIN}");
    let answers = instance_answers(&addr, &host, 3);
    assert_eq!(
        answers,
        (0..3).map(|i| format!("binary app instance {i}\n")).collect::<BTreeSet<_>>(),
        "three instances behind one route"
    );
    until_instances(&server, "bin", "three running instances with memory use", |list| {
        running_count(list) == 3 && list.iter().all(|i| i["usage"]["mem"].as_u64().is_some_and(|m| m > 0))
    });

    // An instance whose process is killed is replaced.
    let before = app_processes(&server, "server");
    assert_eq!(before.len(), 3, "one process per instance: {before:?}");
    let victim = *before.iter().next().unwrap();
    Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = app_processes(&server, "server");
        if now.len() == 3 && !now.contains(&victim) {
            break;
        }
        assert!(Instant::now() < deadline, "the killed instance was not replaced: {now:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    until_instances(&server, "bin", "three running after the crash", |list| running_count(list) == 3);
    assert_eq!(instance_answers(&addr, &host, 3).len(), 3);

    // Recent logs hold the app's own lines and the router's; a streaming reader sees a
    // request's lines as they happen.
    through_router(&addr, &host);
    let recent = server.hearth(&["logs", "bin", "--recent"]).ok();
    assert!(recent.contains("[APP/PROC/WEB/") && recent.contains("served GET / HTTP/1.1"), "{recent}");
    assert!(recent.contains("[RTR/") && recent.contains(&format!("{host} - ")), "{recent}");
    assert!(recent.contains("[CELL/") && recent.contains("OUT Container became healthy"), "{recent}");
    assert!(recent.contains("crashed: APP/PROC/WEB: Exited with status 137"), "the kill, as the cell saw it: {recent}");
    let mut follower = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["logs", "bin"])
        .env("HEARTH_HOME", server.root.join("home"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, seen) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut app_line, mut rtr_line) = (false, false);
    while !(app_line && rtr_line) {
        assert!(Instant::now() < deadline, "streamed logs never showed the request (app: {app_line}, rtr: {rtr_line})");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let _ = reqwest::Client::new().get(format!("http://{addr}/streamed")).header("host", &host).send().await;
        });
        while let Ok(line) = seen.recv_timeout(Duration::from_millis(300)) {
            app_line |= line.contains("[APP/PROC/WEB/") && line.contains("served GET /streamed");
            rtr_line |= line.contains("[RTR/") && line.contains("\"GET /streamed HTTP/1.1\" 200");
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();

    // A restarted server finds its apps still answering, and still managed.
    server.restart();
    for (name, _) in expected {
        until_router(&addr, &format!("{name}.{DOMAIN}"), &format!("{name} after a restart"), |s, _| s == 200);
    }
    assert_eq!(instance_answers(&addr, &host, 3).len(), 3, "all three instances after a restart");
    // Scaling down drops instances from the router before they are stopped: no request fails.
    let stop_asking = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, addr, host) = (stop_asking.clone(), addr.clone(), host.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(through_router(&addr, &host).0);
            }
            answers
        })
    };
    server.hearth(&["scale", "bin", "-i", "1"]).ok();
    until_instances(&server, "bin", "one instance after scaling down", |list| {
        list.len() == 1 && running_count(list) == 1
    });
    until(|| app_processes(&server, "server").len() == 1, "two instances stopped");
    stop_asking.store(true, Ordering::Relaxed);
    let answers = client.join().unwrap();
    assert!(!answers.is_empty() && answers.iter().all(|&s| s == 200), "while scaling down: {answers:?}");

    // Deleting an app takes its route and its instance; deleting them all leaves nothing.
    let containers = |server: &Server| leftovers(server).iter().filter(|l| l.starts_with("container ")).count();
    until(|| containers(&server) == expected.len(), "one container per app once bin is scaled down");
    server.hearth(&["delete", "img", "-f", "-r"]).ok();
    let (status, _) = until_router(&addr, &format!("img.{DOMAIN}"), "img's route gone", |s, _| s == 404);
    assert_eq!(status, 404);
    until(|| containers(&server) == expected.len() - 1, "img's container gone");
    for (name, _) in expected.iter().filter(|(n, _)| *n != "img") {
        server.hearth(&["delete", name, "-f", "-r"]).ok();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leftovers(&server).is_empty() {
        assert!(Instant::now() < deadline, "left behind after deleting every app: {:#?}", leftovers(&server));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(server.hearth(&["apps"]).ok().contains("No apps found"), "no apps remain");
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
}
