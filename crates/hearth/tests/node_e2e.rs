//! End to end, as root: `hearth containers …` and `hearth images …` against a real
//! `hearth server`, running real containers on the host stack and on an image pulled from
//! a real registry (Debian's `docker-registry`) that this test fills over the
//! distribution API.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server, json_of};
use common::registry::{Registry, busybox_layer};
use serde_json::{Value, json};

#[test]
fn operators_run_containers_and_pull_images_through_the_cli() {
    let registry =
        Registry::start(&std::env::temp_dir().join(format!("hearth-node-e2e-registry-{}", std::process::id())));
    let image = registry.push(
        "e2e/busybox",
        "1",
        &busybox_layer(),
        json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ["echo from-image $GREETING $EXTRA; id -u"],
                "User": "app",
                "Env": ["GREETING=hi"],
            },
        }),
    );
    let server = Server::start_with(&["--node-dir", "{root}/node", "--insecure-registry", &registry.host]);
    server.hearth(&["api", &server.url]).ok();
    server.hearth(&["login", "-u", "admin", "-p", ADMIN_PASSWORD]).ok();

    // A command on the host stack, as CF's unprivileged user.
    let out = server.hearth(&["containers", "run", "--", "/bin/sh", "-c", "echo hello $((6*7)); id -u"]).ok();
    assert_eq!(out, "hello 42\n2000\n");
    let err = server.hearth(&["containers", "run", "--", "/bin/sh", "-c", "echo oops >&2; exit 3"]).fails();
    assert!(err.contains("oops") && err.contains("exited with status 3"), "{err}");

    // Pull with progress, then again from the cache.
    let out = server.hearth(&["images", "pull", &image]).ok();
    assert!(out.contains(&format!("Pulling {image}...")) && out.contains("stored") && out.contains("OK"), "{out}");
    let out = server.hearth(&["images", "pull", &image]).ok();
    assert!(out.contains("already here"), "{out}");
    let images = json_of(&server.hearth(&["images", "list", "--json"]).ok());
    assert_eq!(images.as_array().map(Vec::len), Some(1), "{images}");
    assert_eq!(images[0]["reference"], image);
    let metrics = json_of(&server.hearth(&["images", "metrics", "--json"]).ok());
    assert_eq!(metrics["pulls"], 2, "{metrics}");
    assert_eq!(metrics["pull_cache_hits"], 1, "{metrics}");
    // Layers just pulled are within the collector's grace period: nothing goes.
    let report = json_of(&server.hearth(&["images", "gc", "--json"]).ok());
    assert_eq!(report["removed"], json!([]), "{report}");
    assert!(report["bytes_used"].as_u64().unwrap() > 0, "{report}");

    // The image's entrypoint, cmd, env and user; the caller's env on top.
    let out = server.hearth(&["containers", "run", "--image", &image, "-e", "EXTRA=there"]).ok();
    assert_eq!(out, "from-image hi there\n1500\n");
    let err = server.hearth(&["containers", "run", "--image", "127.0.0.1:1/not/pulled:1", "--", "true"]).fails();
    assert!(err.contains("not pulled") && err.contains("hearth images pull"), "{err}");

    // A kept container is listed, shown and destroyed; destroying it twice is an error.
    server.hearth(&["containers", "run", "--keep", "--name", "kept", "--", "/bin/true"]).ok();
    let list = json_of(&server.hearth(&["containers", "list", "--json"]).ok());
    let kept: Vec<&Value> = list.as_array().unwrap().iter().filter(|c| c["id"] == "kept").collect();
    assert_eq!(kept.len(), 1, "{list}");
    assert_eq!(kept[0]["state"], "stopped");
    let out = server.hearth(&["containers", "info", "kept"]).ok();
    assert!(out.contains("status 0") && out.contains("/bin/true"), "{out}");
    let err = server.hearth(&["containers", "run", "--name", "kept", "--", "/bin/true"]).fails();
    assert!(err.contains("already exists"), "{err}");
    server.hearth(&["containers", "destroy", "kept"]).ok();
    let err = server.hearth(&["containers", "destroy", "kept"]).fails();
    assert!(err.contains("Container not found"), "{err}");
    let err = server.hearth(&["containers", "info", "bad@id"]).fails();
    assert!(err.contains("invalid") || err.contains("Invalid"), "{err}");

    // A detached server with a mapped port, reached from the host; with a disk limit.
    let script =
        "mkdir -p /tmp/www && echo hello from web > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www";
    let created = json_of(
        &server
            .hearth(&[
                "containers",
                "run",
                "-d",
                "--name",
                "web",
                "-p",
                "8080",
                "--disk-mb",
                "64",
                "--json",
                "--",
                "/bin/sh",
                "-c",
                script,
            ])
            .ok(),
    );
    let host_port = created["network"]["ports"][0]["host"].as_u64().expect("a mapped host port");
    assert!(created["network"]["address"].as_str().is_some_and(|a| a.starts_with("10.")), "{created}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let page = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match reqwest::get(format!("http://127.0.0.1:{host_port}/")).await {
                Ok(r) if r.status() == 200 => return r.text().await.unwrap(),
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("the container's web server did not answer: {other:?}"),
            }
        }
    });
    assert_eq!(page, "hello from web\n");
    let out = server.hearth(&["containers", "info", "web", "--json"]).ok();
    assert_eq!(json_of(&out)["state"], "running", "{out}");
    server.hearth(&["containers", "destroy", "web"]).ok();

    // Bad bodies change nothing and say what is wrong.
    let out =
        server.hearth(&["curl", "-X", "POST", "/hearth/v1/containers", "-d", r#"{"command":["true"],"bogus":1}"#]);
    assert!(out.stdout().contains("CF-MessageParseError") && out.stdout().contains("bogus"), "{}", out.describe());
    let out =
        server.hearth(&["curl", "-X", "POST", "/hearth/v1/containers", "-d", r#"{"command":["true"],"env":["X"]}"#]);
    assert!(
        out.stdout().contains("CF-UnprocessableEntity") && out.stdout().contains("NAME=value"),
        "{}",
        out.describe()
    );

    // Only admins; no token at all is a 401 in CF's format.
    let (status, body) = runtime.block_on(async {
        let response = reqwest::get(format!("{}/hearth/v1/containers", server.url)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("CF-NotAuthenticated"), "{body}");
    server.hearth(&["create-user", "eve", "eve-password"]).ok();
    let eve = server.root.join("eve-home");
    server.hearth_in(&eve, &["api", &server.url]).ok();
    server.hearth_in(&eve, &["login", "-u", "eve", "-p", "eve-password"]).ok();
    let err = server.hearth_in(&eve, &["containers", "list"]).fails();
    assert!(err.contains("not authorized"), "{err}");
    let err = server.hearth_in(&eve, &["images", "pull", &image]).fails();
    assert!(err.contains("not authorized"), "{err}");

    // Nothing is left on the machine: no containers, no root filesystems, no mounts.
    let node = server.root.join("node");
    let entries = |dir: &str| std::fs::read_dir(node.join(dir)).map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries("containers/containers"), 0);
    assert_eq!(entries("images/rootfs"), 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&node.to_string_lossy().to_string()), "mounts left under {}", node.display());
}

/// A crash between making a root filesystem and its container (or the reverse) leaves
/// half-made things; opening the node again removes them and keeps whole containers.
#[test]
fn opening_the_node_sweeps_what_a_crash_left_half_made() {
    use hearth_cell::node::{ContainerRequest, Node, NodeConfig};
    use hearth_containers::ContainerId;

    let dir = std::env::temp_dir().join(format!("hearth-node-sweep-{}", std::process::id()));
    let _cgroups = common::CgroupParents(vec![format!("hearth-sweep-{}", std::process::id())]);
    let config = NodeConfig {
        dir: dir.clone(),
        insecure_registries: Vec::new(),
        cgroup_parent: format!("hearth-sweep-{}", std::process::id()),
        helper: Some(PathBuf::from(env!("CARGO_BIN_EXE_hearth"))),
        network: hearth_containers::NetworkConfig {
            bridge: "hsweep0".into(),
            subnet: "10.254.64.0/24".parse().unwrap(),
            table: "hearth_sweep".into(),
            host_ports: 62000..=62099,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let node = Node::open(&config).await.unwrap();
        let stack = node.host_stack().await.unwrap().clone();
        // A root filesystem whose container was never made.
        node.images().create_rootfs("lonely", &stack.with_layers(&[])).unwrap();
        // A whole container that keeps running, and one whose root filesystem vanished.
        let whole = ContainerId::new("whole").unwrap();
        let request = |id: &ContainerId| ContainerRequest::new(id.clone(), vec!["/bin/sleep".into(), "30".into()]);
        node.run(&request(&whole)).await.unwrap();
        let broken = ContainerId::new("broken").unwrap();
        node.run(&request(&broken)).await.unwrap();
        node.runtime().kill(&broken, 9).await.unwrap();
        node.runtime().wait(&broken).await.unwrap();
        node.images().destroy_rootfs("broken").unwrap();
        drop(node);

        let node = Node::open(&config).await.unwrap();
        assert_eq!(node.images().rootfs_ids().unwrap(), ["whole"]);
        assert_eq!(node.runtime().list().await.unwrap(), std::slice::from_ref(&whole));
        let info = node.runtime().info(&whole).await.unwrap();
        assert_eq!(info.status, hearth_containers::Status::Running);
        node.destroy(&whole).await.unwrap();
        assert!(node.sweep().await.unwrap().is_empty());
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
