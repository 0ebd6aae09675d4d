//! End to end, as root: one-off tasks (`hearth run-task`, `tasks`, `terminate-task`)
//! against a real `hearth server` with real containers and a real registry. A task that
//! exits 0 SUCCEEDS and its output is in the app's logs as `APP/TASK/<name>`; one that
//! exits 3 FAILS with CF's reason; a long one is cancelled (CANCELING, then FAILED "task
//! was cancelled") and its container goes; a running task survives a server restart and
//! is cancelled after it. Bad input (unknown fields, no command, bad limits, no droplet,
//! an app of another space, an auditor's cancel) gets CF's errors and creates nothing;
//! auditors see tasks without their command. No task container is left at the end.

mod common;

use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server, json_of};
use common::push::Api;
use common::registry::{Registry, busybox_layer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The `task-` containers on the server's machine.
fn task_containers(server: &Server) -> Vec<String> {
    let list = json_of(&server.hearth(&["containers", "list", "--json"]).ok());
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .filter(|id| id.starts_with("task-"))
        .map(str::to_string)
        .collect()
}

/// Polls `hearth tasks APP --json` until the task named `name` satisfies `done`.
fn until_task(server: &Server, app: &str, name: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let tasks = json_of(&server.hearth(&["tasks", app, "--json"]).ok());
        let task = tasks.as_array().unwrap().iter().find(|t| t["name"] == name).cloned().unwrap_or(Value::Null);
        if done(&task) {
            return task;
        }
        assert!(Instant::now() < deadline, "task {name}: still {task}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn until_logs(server: &Server, app: &str, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.hearth(&["logs", app, "--recent"]).ok();
        if out.lines().any(|l| l.contains(line)) {
            return out;
        }
        assert!(Instant::now() < deadline, "no '{line}' in the recent logs:\n{out}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn tasks_run_fail_are_cancelled_and_survive_a_restart() {
    let registry = Registry::start(&std::env::temp_dir().join(format!("hearth-tasks-registry-{}", std::process::id())));
    let web = "mkdir -p /tmp/www && echo up > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www";
    let image = registry.push(
        "apps/web",
        "1",
        &busybox_layer(),
        json!({"architecture": "amd64", "os": "linux",
               "config": {"Cmd": ["/bin/sh", "-c", web], "ExposedPorts": {"8080/tcp": {}}}}),
    );
    let mut server = Server::start_with(&["--node-dir", "{root}/node", "--insecure-registry", &registry.host]);
    server.sign_in_to_acme_dev();
    server.hearth(&["push", "web", "--docker-image", &image, "-m", "64M", "--no-route"]).ok();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = rt.block_on(Api::login(&server.url, "admin", ADMIN_PASSWORD));
    let app = rt.block_on(admin.ok(Method::GET, "/v3/apps?names=web", None))["resources"][0].clone();
    let app_guid = app["guid"].as_str().unwrap().to_string();
    let tasks_path = format!("/v3/apps/{app_guid}/tasks");

    // Bad input: CF's errors, nothing created.
    let err = server.hearth(&["run-task", "web"]).fails();
    assert!(err.contains("--command"), "{err}");
    let err = server.hearth(&["run-task", "nope", "--command", "true"]).fails();
    assert!(err.contains("App 'nope' not found"), "{err}");
    for (body, want) in [
        (json!({"command": "true", "bogus": 1}), "Unknown field(s): 'bogus'"),
        (json!({"name": "x"}), "Command can't be blank"),
        (json!({"command": ""}), "Command can't be blank"),
        (json!({"command": "true", "memory_in_mb": 0}), "Memory in mb must be greater than 0"),
        (json!({"command": 7}), "Command must be a string"),
        (json!({"command": "true", "droplet_guid": "no-such-droplet"}), "Droplet with guid 'no-such-droplet'"),
    ] {
        let (status, v) = rt.block_on(admin.call(Method::POST, &tasks_path, Some(body.clone())));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["errors"][0]["title"], "CF-UnprocessableEntity", "{v}");
        assert!(v["errors"][0]["detail"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let bare = rt.block_on(admin.ok(
        Method::POST,
        "/v3/apps",
        Some(json!({"name": "bare", "relationships": {"space": {"data": {"guid": app["relationships"]["space"]["data"]["guid"]}}}})),
    ));
    let (status, v) = rt.block_on(admin.call(
        Method::POST,
        &format!("/v3/apps/{}/tasks", bare["guid"].as_str().unwrap()),
        Some(json!({"command": "true"})),
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["detail"], "Task must have a droplet. Assign a current droplet to the app.");
    // A developer of another space does not see the app; an auditor of this one may not run tasks.
    server.hearth(&["create-space", "other"]).ok();
    server.hearth(&["create-user", "olga", "olga-password"]).ok();
    server.hearth(&["set-space-role", "olga", "acme", "other", "SpaceDeveloper"]).ok();
    server.hearth(&["create-user", "aude", "aude-password"]).ok();
    server.hearth(&["set-space-role", "aude", "acme", "dev", "SpaceAuditor"]).ok();
    let olga = rt.block_on(Api::login(&server.url, "olga", "olga-password"));
    let aude = rt.block_on(Api::login(&server.url, "aude", "aude-password"));
    let (status, v) = rt.block_on(olga.call(Method::POST, &tasks_path, Some(json!({"command": "true"}))));
    assert_eq!((status, v["errors"][0]["detail"].as_str()), (StatusCode::NOT_FOUND, Some("App not found")), "{v}");
    let (status, v) = rt.block_on(aude.call(Method::POST, &tasks_path, Some(json!({"command": "true"}))));
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(server.hearth(&["tasks", "web"]).ok().contains("No tasks found."));
    assert_eq!(rt.block_on(admin.ok(Method::GET, "/v3/tasks", None))["pagination"]["total_results"], 0);

    // A task that exits 0: SUCCEEDED, its output in the app's logs as APP/TASK/<name>.
    let out = server
        .hearth(&[
            "run-task",
            "web",
            "--command",
            "echo hello from $CF_INSTANCE_GUID; exit 0",
            "--name",
            "hello",
            "-m",
            "64M",
            "--wait",
        ])
        .ok();
    assert!(out.contains("Task has been submitted successfully for execution."), "{out}");
    assert!(out.lines().any(|l| l.starts_with("task name:") && l.ends_with("hello")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("task id:") && l.ends_with('1')), "{out}");
    assert!(out.contains("Task hello (id 1) succeeded."), "{out}");
    let hello = until_task(&server, "web", "hello", 5, |t| t["state"] == "SUCCEEDED");
    assert_eq!((hello["sequence_id"].as_i64(), hello["memory_in_mb"].as_i64()), (Some(1), Some(64)), "{hello}");
    assert_eq!(hello["result"]["failure_reason"], Value::Null, "{hello}");
    let logs = until_logs(&server, "web", "[APP/TASK/hello/0] OUT hello from");
    assert!(logs.contains(&format!("hello from {}", hello["guid"].as_str().unwrap())), "{logs}");

    // A task that exits 3: FAILED with CF's reason; --wait fails with it.
    let err = server
        .hearth(&["run-task", "web", "--command", "echo oops >&2; exit 3", "--name", "three", "-m", "64M", "--wait"])
        .fails();
    assert!(err.contains("Task three (id 2) failed: APP/TASK/three: Exited with status 3"), "{err}");
    until_logs(&server, "web", "[APP/TASK/three/0] ERR oops");
    let three = until_task(&server, "web", "three", 5, |t| t["state"] == "FAILED");
    assert_eq!(three["result"]["failure_reason"], "APP/TASK/three: Exited with status 3");
    // A finished task cannot be cancelled.
    let (status, v) = rt.block_on(admin.call(
        Method::POST,
        &format!("/v3/tasks/{}/actions/cancel", three["guid"].as_str().unwrap()),
        None,
    ));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["detail"], "Task state is FAILED and therefore cannot be canceled");

    // A long task is cancelled: CANCELING, then FAILED, and its container goes.
    let created =
        rt.block_on(admin.ok(Method::POST, &tasks_path, Some(json!({"command": "sleep 600", "memory_in_mb": 64}))));
    let sleeper = created["name"].as_str().unwrap().to_string();
    assert_eq!(sleeper.len(), 8, "the default name is 8 hex characters: {created}");
    assert!(sleeper.chars().all(|c| c.is_ascii_hexdigit()), "{created}");
    assert_eq!((created["state"].as_str(), created["sequence_id"].as_i64()), (Some("PENDING"), Some(3)), "{created}");
    let cancel = created["links"]["cancel"]["href"].as_str().unwrap().to_string();
    until_task(&server, "web", &sleeper, 30, |t| t["state"] == "RUNNING");
    // RUNNING is recorded as the cell takes the task, before its container is made.
    let want = [format!("task-{}", created["guid"].as_str().unwrap())];
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_containers(&server) != want {
        assert!(Instant::now() < deadline, "the running task's container: {:?}", task_containers(&server));
        std::thread::sleep(Duration::from_millis(100));
    }
    // An auditor sees it, without the command, and may not cancel it.
    let seen = rt.block_on(aude.ok(Method::GET, &format!("/v3/tasks/{}", created["guid"].as_str().unwrap()), None));
    assert!(seen.get("command").is_none() && seen["name"] == sleeper.as_str(), "{seen}");
    let path = cancel.trim_start_matches(&server.url).to_string();
    let (status, v) = rt.block_on(aude.call(Method::POST, &path, None));
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    server.hearth(&["terminate-task", "web", "3"]).ok();
    let cancelled = until_task(&server, "web", &sleeper, 30, |t| t["state"] == "FAILED");
    assert_eq!(cancelled["result"]["failure_reason"], "task was cancelled", "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !task_containers(&server).is_empty() {
        assert!(Instant::now() < deadline, "the cancelled task's container is gone: {:?}", task_containers(&server));
        std::thread::sleep(Duration::from_millis(300));
    }
    let err = server.hearth(&["terminate-task", "web", "99"]).fails();
    assert!(err.contains("Task sequence ID 99 not found."), "{err}");

    // A running task survives a restart of the server (its cell reattaches) and is
    // cancelled after it; nothing is left.
    // (A task whose container was still being made when the server stopped fails as lost:
    // wait until its process runs.)
    server
        .hearth(&["run-task", "web", "--command", "echo survivor up; sleep 600", "--name", "survivor", "-m", "64M"])
        .ok();
    until_task(&server, "web", "survivor", 30, |t| t["state"] == "RUNNING");
    until_logs(&server, "web", "[APP/TASK/survivor/0] OUT survivor up");
    server.restart();
    std::thread::sleep(Duration::from_secs(2));
    until_task(&server, "web", "survivor", 5, |t| t["state"] == "RUNNING");
    assert_eq!(task_containers(&server).len(), 1);
    server.hearth(&["terminate-task", "web", "4"]).ok();
    until_task(&server, "web", "survivor", 30, |t| t["state"] == "FAILED");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !task_containers(&server).is_empty() {
        assert!(Instant::now() < deadline, "no task container is left: {:?}", task_containers(&server));
        std::thread::sleep(Duration::from_millis(300));
    }

    // The list, filters and paging; the audit events (a new client: the server restarted).
    let admin = rt.block_on(Api::login(&server.url, "admin", ADMIN_PASSWORD));
    let out = server.hearth(&["tasks", "web"]).ok();
    let rows: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("id ")).collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows[1].starts_with("4 ") && rows[1].contains("survivor") && rows[1].contains("FAILED"), "{out}");
    assert!(rows[4].starts_with("1 ") && rows[4].contains("SUCCEEDED") && rows[4].contains("echo hello"), "{out}");
    let failed = rt.block_on(admin.ok(Method::GET, &format!("{tasks_path}?states=FAILED&per_page=2"), None));
    assert_eq!(failed["pagination"]["total_results"], 3, "{failed}");
    assert_eq!(failed["resources"].as_array().unwrap().len(), 2, "{failed}");
    let named = rt.block_on(admin.ok(Method::GET, "/v3/tasks?names=hello,three", None));
    assert_eq!(named["pagination"]["total_results"], 2, "{named}");
    let (status, _) = rt.block_on(admin.call(Method::GET, "/v3/tasks?bogus=1", None));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let events = server.hearth(&["events", "web"]).ok();
    assert_eq!(events.lines().filter(|l| l.contains("audit.app.task.create")).count(), 4, "{events}");
    assert_eq!(events.lines().filter(|l| l.contains("audit.app.task.cancel")).count(), 2, "{events}");
}
