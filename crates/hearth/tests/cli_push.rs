//! End to end, as root: `hearth push --docker-image` and the app commands run as a user
//! would, against a real `hearth server` and a real registry — the app answers through
//! the router by host name, is scaled, re-staged with a new environment, stopped,
//! started, given another route, and deleted with its routes, leaving no container.
//! Bad flags and manifests are refused before anything is created.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cli::{Server, instances, json_of, shows_running, through_router, until_router};
use common::registry::Registry;
use serde_json::json;

#[test]
fn a_docker_app_is_pushed_and_managed_through_the_cli() {
    let registry =
        Registry::start(&std::env::temp_dir().join(format!("hearth-cli-push-registry-{}", std::process::id())));
    let web = "echo starting instance $CF_INSTANCE_INDEX && mkdir -p /tmp/www && echo hello from ${GREETING:-nobody} on $CF_INSTANCE_INDEX > /tmp/www/index.html \
               && exec busybox httpd -f -p 8080 -h /tmp/www";
    let image = registry.push_shell_app(web);
    let server = Server::start_with(&[
        "--node-dir",
        "{root}/node",
        "--insecure-registry",
        &registry.host,
        "--app-domain",
        "apps.test.internal",
    ]);
    let addr = server.url.trim_start_matches("http://").to_string();
    server.sign_in_to_acme_dev();

    // Refused before anything is sent: nothing is created.
    let err = server.hearth(&["push", "web", "--docker-image", &image, "-b", "go_buildpack"]).fails();
    assert!(err.contains("cannot be used together: --docker-image, -o, -b"), "{err}");
    let err = server.hearth(&["push", "web", "--docker-image", &image, "--no-route", "--hostname", "h"]).fails();
    assert!(err.contains("--no-route"), "{err}");
    let err = server.hearth(&["push", "web", "--docker-image", &image, "-m", "64"]).fails();
    assert!(err.contains("unit of measurement"), "{err}");
    let manifest_dir = server.root.join("manifests");
    std::fs::create_dir_all(&manifest_dir).unwrap();
    let manifest = manifest_dir.join("manifest.yml");
    std::fs::write(
        &manifest,
        "applications:\n- name: api\n  docker:\n    image: ((image))\n  memory: 32M\n\
         - name: worker\n  docker:\n    image: ((image))\n  no-route: true\n",
    )
    .unwrap();
    let err = server.hearth(&["push", "-f", manifest.to_str().unwrap()]).fails();
    assert!(err.contains("Expected to find variables: image"), "{err}");
    std::fs::write(manifest_dir.join("bad.yml"), "applications: [").unwrap();
    let err = server.hearth(&["push", "-f", manifest_dir.join("bad.yml").to_str().unwrap()]).fails();
    assert!(err.contains("not valid YAML"), "{err}");
    assert!(server.hearth(&["apps"]).ok().contains("No apps found"));

    // Push: two instances, reached through the router by host name.
    let out = server.hearth(&["push", "web", "--docker-image", &image, "-i", "2", "-m", "64M"]).ok();
    assert!(out.contains("Applying manifest...") && out.contains("Staging app"), "{out}");
    assert!(out.contains("routes:") && out.contains("web.apps.test.internal"), "{out}");
    assert!(shows_running(&out), "the summary shows a running instance: {out}");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        let (status, body) = through_router(&addr, "web.apps.test.internal");
        if status == 200 {
            seen.insert(body);
        }
        assert!(Instant::now() < deadline, "both instances answer: {seen:?}");
    }
    assert_eq!(seen, BTreeSet::from(["hello from nobody on 0\n".to_owned(), "hello from nobody on 1\n".to_owned()]));

    assert!(out.contains("   Staging complete"), "push shows the staging lines: {out}");

    // Logs: recent lines of staging, the app and the router; then following new ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.hearth(&["logs", "web", "--recent"]).ok();
        let has = |what: &str| out.lines().any(|l| l.contains(what));
        if has("[STG/") && has("[APP/PROC/WEB/0] OUT starting instance 0") && has("[RTR/") {
            break;
        }
        assert!(Instant::now() < deadline, "recent logs: {out}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let recent = json_of(&server.hearth(&["logs", "web", "--recent", "--json"]).ok());
    assert!(recent.as_array().unwrap().iter().any(|l| l["source_type"] == "APP/PROC/WEB"), "{recent}");
    let follower = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["logs", "web"])
        .env("HEARTH_HOME", server.root.join("home"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    through_router(&addr, "web.apps.test.internal");
    std::thread::sleep(Duration::from_secs(4));
    let _ = std::process::Command::new("kill").args(["-INT", &follower.id().to_string()]).status();
    let followed = String::from_utf8_lossy(&follower.wait_with_output().unwrap().stdout).into_owned();
    assert!(followed.starts_with("Tailing logs for app web"), "{followed}");
    assert!(followed.lines().filter(|l| l.contains("[RTR/")).count() >= 1, "the new request is followed: {followed}");
    let err = server.hearth(&["logs", "nope", "--recent"]).fails();
    assert!(err.contains("App 'nope' not found"), "{err}");

    let summary = json_of(&server.hearth(&["app", "web", "--json"]).ok());
    assert_eq!(summary["app"]["state"], "STARTED", "{summary}");
    assert_eq!(summary["app"]["lifecycle"]["type"], "docker", "{summary}");
    assert_eq!(summary["routes"][0]["url"], "web.apps.test.internal", "{summary}");
    assert_eq!(summary["current_droplet"]["image"], image.as_str(), "{summary}");
    assert_eq!(summary["processes"][0]["process"]["memory_in_mb"], 64, "{summary}");
    assert_eq!(instances(&summary).len(), 2, "{summary}");
    let out = server.hearth(&["apps"]).ok();
    assert!(
        out.lines().any(|l| l.starts_with("web") && l.contains("started") && l.contains("web.apps.test.internal")),
        "{out}"
    );

    // Scale to one instance.
    let out = server.hearth(&["scale", "web", "-i", "1"]).ok();
    assert!(out.contains("Scaling app web"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while instances(&json_of(&server.hearth(&["app", "web", "--json"]).ok())).len() != 1 {
        assert!(Instant::now() < deadline, "scaled to one instance");
        std::thread::sleep(Duration::from_millis(300));
    }
    until_router(&addr, "web.apps.test.internal", "only index 0 answers", |s, b| s == 200 && b.ends_with("on 0\n"));

    // Memory needs a restart (-f: without asking); restart keeps it running.
    server.hearth(&["scale", "web", "-m", "48M", "-f"]).ok();
    let summary = json_of(&server.hearth(&["app", "web", "--json"]).ok());
    assert_eq!(summary["processes"][0]["process"]["memory_in_mb"], 48, "{summary}");
    assert_eq!(summary["processes"][0]["instances"][0]["mem_quota"], 48 * 1024 * 1024, "{summary}");
    let out = server.hearth(&["restart", "web"]).ok();
    assert!(out.contains("Stopping app...") && shows_running(&out), "{out}");
    until_router(&addr, "web.apps.test.internal", "restarted", |s, _| s == 200);

    // Environment: set, see, restage to apply; unsetting what is not set changes nothing.
    let out = server.hearth(&["set-env", "web", "GREETING", "hearth"]).ok();
    assert!(out.contains("hearth restage web"), "{out}");
    assert!(server.hearth(&["env", "web"]).ok().contains("GREETING: hearth"));
    let out = server.hearth(&["unset-env", "web", "NOPE"]).ok();
    assert!(out.contains("Env variable NOPE was not set."), "{out}");
    server.hearth(&["restage", "web"]).ok();
    until_router(&addr, "web.apps.test.internal", "the restaged app sees GREETING", |s, b| {
        s == 200 && b == "hello from hearth on 0\n"
    });
    let droplets = json_of(&server.hearth(&["droplets", "web", "--json"]).ok());
    assert_eq!(droplets.as_array().map(Vec::len), Some(2), "{droplets}");
    assert!(server.hearth(&["droplets", "web"]).ok().contains("(current)"));
    let packages = json_of(&server.hearth(&["packages", "web", "--json"]).ok());
    assert_eq!(packages[0]["type"], "docker", "{packages}");

    // Stop and start.
    server.hearth(&["stop", "web"]).ok();
    until_router(&addr, "web.apps.test.internal", "a stopped app is not routed", |s, _| s == 404);
    assert_eq!(json_of(&server.hearth(&["app", "web", "--json"]).ok())["app"]["state"], "STOPPED");
    assert!(server.hearth(&["stop", "web"]).ok().contains("already stopped"));
    server.hearth(&["start", "web"]).ok();
    until_router(&addr, "web.apps.test.internal", "started again", |s, _| s == 200);

    // Another route: create, map, see it listed, unmap, delete.
    server.hearth(&["create-route", "apps.test.internal", "--hostname", "www"]).ok();
    server.hearth(&["map-route", "web", "apps.test.internal", "--hostname", "www"]).ok();
    until_router(&addr, "www.apps.test.internal", "the mapped route answers", |s, _| s == 200);
    let out = server.hearth(&["routes"]).ok();
    assert!(out.lines().any(|l| l.contains("www") && l.contains("apps.test.internal") && l.ends_with("web")), "{out}");
    server.hearth(&["unmap-route", "web", "apps.test.internal", "--hostname", "www"]).ok();
    until_router(&addr, "www.apps.test.internal", "the unmapped route", |s, _| s == 404);
    server.hearth(&["delete-route", "apps.test.internal", "--hostname", "www", "-f"]).ok();
    let routes = json_of(&server.hearth(&["routes", "--json"]).ok());
    assert_eq!(routes.as_array().map(Vec::len), Some(1), "{routes}");
    let err = server.hearth(&["map-route", "web", "no.such.domain", "--hostname", "x"]).fails();
    assert!(err.contains("Domain 'no.such.domain' not found"), "{err}");

    // A manifest with vars, pushed without starting: created, packaged, stopped.
    let out = server
        .hearth(&["push", "-f", manifest.to_str().unwrap(), "--var", &format!("image={image}"), "--no-start"])
        .ok();
    assert!(out.contains("Pushing from manifest"), "{out}");
    let api = json_of(&server.hearth(&["app", "api", "--json"]).ok());
    assert_eq!(api["app"]["state"], "STOPPED", "{api}");
    assert_eq!(api["processes"][0]["process"]["memory_in_mb"], 32, "{api}");
    assert_eq!(api["routes"][0]["url"], "api.apps.test.internal", "{api}");
    let packages = json_of(&server.hearth(&["packages", "api", "--json"]).ok());
    assert_eq!(packages[0]["data"]["image"], image.as_str(), "{packages}");
    let worker = json_of(&server.hearth(&["app", "worker", "--json"]).ok());
    assert_eq!(worker["app"]["state"], "STOPPED", "every app of the manifest is pushed: {worker}");
    assert_eq!(worker["routes"], json!([]), "{worker}");
    // With a name, only that app of the manifest.
    let out = server
        .hearth(&[
            "push",
            "worker",
            "-f",
            manifest.to_str().unwrap(),
            "--var",
            &format!("image={image}"),
            "--no-start",
            "--json",
        ])
        .ok();
    let pushed = json_of(&out);
    let names: Vec<&str> = pushed.as_array().unwrap().iter().filter_map(|s| s["app"]["name"].as_str()).collect();
    assert_eq!(names, ["worker"], "only the named app of the manifest: {out}");
    assert_eq!(json_of(&server.hearth(&["packages", "worker", "--json"]).ok()).as_array().map(Vec::len), Some(2));
    assert_eq!(json_of(&server.hearth(&["packages", "api", "--json"]).ok()).as_array().map(Vec::len), Some(1));

    // Bits: a directory with a Procfile and the built-in binary buildpack; `.cfignore`d
    // files stay home; a re-push of the same files uploads none of them again.
    let site = server.root.join("site");
    std::fs::create_dir_all(site.join("www")).unwrap();
    let run = "echo \"site $CF_INSTANCE_INDEX has $(ls -a | tr '\\n' ' ')\" > www/index.html\n\
               exec busybox httpd -f -p $PORT -h www\n";
    std::fs::write(site.join("run.sh"), run).unwrap();
    std::fs::write(site.join("Procfile"), "web: sh run.sh\n").unwrap();
    std::fs::write(site.join(".cfignore"), "secret.txt\n").unwrap();
    std::fs::write(site.join("secret.txt"), "do not upload\n").unwrap();
    let site_dir = site.to_str().unwrap();
    let out = server.hearth(&["push", "site", "-p", site_dir, "-b", "binary_buildpack", "-m", "64M"]).ok();
    assert!(out.contains("Uploading files: 2 files") && out.contains("; 0 already on the server"), "{out}");
    assert!(shows_running(&out), "{out}");
    let (_, body) = until_router(&addr, "site.apps.test.internal", "the bits app answers", |s, _| s == 200);
    assert!(body.starts_with("site 0 has ") && body.contains("Procfile") && body.contains("run.sh"), "{body}");
    assert!(!body.contains("secret.txt") && !body.contains(".cfignore"), "ignored files stay home: {body}");
    let out = server.hearth(&["push", "site", "-p", site_dir, "-b", "binary_buildpack", "-m", "64M"]).ok();
    assert!(out.contains("Uploading files: 2 files") && out.contains("; 2 already on the server"), "{out}");
    let packages = json_of(&server.hearth(&["packages", "site", "--json"]).ok());
    assert_eq!(packages.as_array().map(Vec::len), Some(2), "{packages}");
    assert!(packages.as_array().unwrap().iter().all(|p| p["type"] == "bits" && p["state"] == "READY"), "{packages}");
    until_router(&addr, "site.apps.test.internal", "the re-pushed app answers", |s, _| s == 200);
    let out = server.hearth(&["logs", "site", "--recent"]).ok();
    assert!(out.contains("[STG/"), "staging lines of the buildpack: {out}");
    server.hearth(&["delete", "site", "-r", "-f"]).ok();

    // Failures say why and what to look at next.
    let err = server.hearth(&["push", "priv", "--docker-image", &image, "--docker-username", "u"]).fails();
    assert!(err.contains("CF_DOCKER_PASSWORD"), "{err}");
    let missing = format!("{}/apps/missing:1", registry.host);
    let err = server.hearth(&["push", "broken", "--docker-image", &missing]).fails();
    assert!(err.contains("StagingError") && err.contains("hearth logs broken --recent"), "{err}");
    let err = server.hearth(&["push", "crash", "--docker-image", &image, "-c", "echo bye; exit 3", "-t", "20"]).fails();
    assert!(err.contains("hearth logs crash --recent"), "{err}");
    let out = server.hearth(&["logs", "crash", "--recent"]).ok();
    assert!(out.contains("OUT bye"), "the crashed app's output is in its logs: {out}");
    for app in ["broken", "crash"] {
        server.hearth(&["delete", app, "-r", "-f"]).ok();
    }

    // Delete with routes: nothing of web is left, on the API or the machine.
    server.hearth(&["delete", "web", "-r", "-f"]).ok();
    let err = server.hearth(&["app", "web"]).fails();
    assert!(err.contains("App 'web' not found") && err.contains("hearth apps"), "{err}");
    let routes = json_of(&server.hearth(&["routes", "--json"]).ok());
    let urls: Vec<&str> = routes.as_array().unwrap().iter().filter_map(|r| r["url"].as_str()).collect();
    assert_eq!(urls, ["api.apps.test.internal"], "web's route went with it");
    let out = server.hearth(&["delete", "web", "-f"]);
    assert!(out.ok().contains("OK") && out.stderr().contains("App 'web' does not exist."), "{}", out.describe());
    server.hearth(&["delete", "api", "-r", "-f"]).ok();
    server.hearth(&["delete", "worker", "-f"]).ok();
    let containers = server.root.join("node/containers/containers");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&containers).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "containers left after the apps were deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
}
