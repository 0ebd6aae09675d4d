//! End to end, as root: a docker app pushed the way the stock cf CLI v8 pushes it
//! (`apply_manifest`, docker package, build, current droplet, restart, stats polling)
//! against a real `hearth server` and a real registry, then reached through the router
//! by its host name, scaled, re-staged with a broken image (the old droplet keeps
//! running), stopped and deleted — and nothing left running on the machine.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server};
use common::push::{Api, log_lines, running, through_router};
use common::registry::Registry;
use reqwest::Method;
use serde_json::json;

#[test]
fn a_docker_app_is_pushed_reached_by_its_host_scaled_restaged_and_removed() {
    let registry =
        Registry::start(&std::env::temp_dir().join(format!("hearth-push-docker-registry-{}", std::process::id())));
    let web = "echo starting instance $CF_INSTANCE_INDEX && echo oops >&2 && mkdir -p /tmp/www && echo hello from $GREETING on $CF_INSTANCE_INDEX > /tmp/www/index.html \
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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let api = Api::login(&server.url, "admin", ADMIN_PASSWORD).await;
        let org = api.ok(Method::POST, "/v3/organizations", Some(json!({"name": "acme"}))).await;
        let space = api
            .ok(
                Method::POST,
                "/v3/spaces",
                Some(json!({"name": "dev",
                "relationships": {"organization": {"data": {"guid": org["guid"]}}}})),
            )
            .await;
        let space = space["guid"].as_str().unwrap().to_string();

        // Bad manifests are refused and create nothing.
        let (status, _, body) = api.apply_manifest(&space, "applications: [").await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["errors"][0]["title"], "CF-MessageParseError", "{body}");
        let (status, _, body) =
            api.apply_manifest(&space, "applications:\n- name: web\n  docker: {image: x}\n  memory: 64\n").await;
        assert_eq!(status, 422, "{body}");
        assert!(body["errors"][0]["detail"].as_str().unwrap().contains("For application 'web'"), "{body}");
        let apps = api.ok(Method::GET, &format!("/v3/apps?space_guids={space}"), None).await;
        assert_eq!(apps["resources"], json!([]), "nothing was created: {apps}");

        // What `cf push web --docker-image IMAGE -i 2 -m 64M` sends.
        let manifest = "applications:\n- name: web\n  docker:\n    image: IMAGE\n  instances: 2\n  memory: 64M\n  \
                        env:\n    GREETING: hearth\n  default-route: true\n"
            .replace("IMAGE", &image);
        let (status, location, body) = api.apply_manifest(&space, &manifest).await;
        assert_eq!(status, 202, "{body}");
        let job_path = location.expect("a Location").split_once("/v3/").map(|(_, p)| format!("/v3/{p}")).unwrap();
        let apps = api.ok(Method::GET, &format!("/v3/apps?names=web&space_guids={space}"), None).await;
        let app = apps["resources"][0].clone();
        assert_eq!(app["lifecycle"]["type"], "docker", "{apps}");
        let guid = app["guid"].as_str().unwrap().to_string();
        api.until(&job_path, "the manifest job", 30, |j| j["state"] == "COMPLETE").await;
        // What a changed manifest would do (cf v8 shows it before pushing).
        let changed = manifest.replace("instances: 2", "instances: 3") + "- name: other\n";
        let response = api
            .client
            .post(format!("{}/v3/spaces/{space}/manifest_diff", api.url))
            .bearer_auth(&api.token)
            .header("content-type", "application/x-yaml")
            .body(changed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let diff: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            diff["diff"],
            json!([{"op": "replace", "path": "/applications/0/instances", "was": 2, "value": 3},
                   {"op": "add", "path": "/applications/1", "value": {"name": "other"}}]),
            "{diff}"
        );
        let routes = api.ok(Method::GET, &format!("/v3/apps/{guid}/routes"), None).await;
        assert_eq!(routes["resources"][0]["url"], "web.apps.test.internal", "{routes}");
        assert_eq!(routes["resources"][0]["destinations"][0]["app"]["guid"], guid, "{routes}");

        // Staging reads the image's config; the droplet names the image and its command.
        let build = api.stage(&guid, &image).await;
        assert_eq!(build["state"], "STAGED", "{build}");
        let droplet_guid = build["droplet"]["guid"].as_str().unwrap().to_string();
        let droplet = api.ok(Method::GET, &format!("/v3/droplets/{droplet_guid}"), None).await;
        assert_eq!(droplet["image"], image.as_str(), "{droplet}");
        assert!(droplet["process_types"]["web"].as_str().unwrap().contains("busybox httpd"), "{droplet}");
        let (status, body) = api.call(Method::GET, &format!("/v3/apps/{guid}/droplets/current"), None).await;
        assert_eq!(status, 404, "no current droplet yet: {body}");
        assert_eq!(body["errors"][0]["detail"], "Droplet not found", "{body}");
        api.ok(
            Method::PATCH,
            &format!("/v3/apps/{guid}/relationships/current_droplet"),
            Some(json!({"data": {"guid": droplet_guid}})),
        )
        .await;
        let started = api.ok(Method::POST, &format!("/v3/apps/{guid}/actions/restart"), None).await;
        assert_eq!(started["state"], "STARTED", "{started}");

        // Both instances start; every request is answered by one of them, by host name.
        let stats_path = format!("/v3/processes/{guid}/stats");
        let stats = api.ok(Method::GET, &stats_path, None).await;
        assert_eq!(stats["resources"].as_array().unwrap().len(), 2, "one entry per instance at once: {stats}");
        api.until(&stats_path, "2 running", 90, |s| running(s) == 2).await;
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < 2 {
            let (status, body, _) = through_router(&addr, "web.apps.test.internal").await;
            if status == 200 {
                seen.insert(body);
            }
            assert!(Instant::now() < deadline, "both instances answer through the router: {seen:?}");
        }
        let want: BTreeSet<String> = ["hello from hearth on 0\n", "hello from hearth on 1\n"].map(String::from).into();
        assert_eq!(seen, want);
        // The app's logs: staging (STG), both instances' stdout and stderr (APP), the
        // router's access lines (RTR), as log-cache serves them.
        let logs_path = format!("/api/v1/read/{guid}?envelope_types=LOG&limit=1000");
        let logs = api
            .until(&logs_path, "the app's logs", 20, |l| {
                let lines = log_lines(l);
                [
                    "STG:Staging complete",
                    "APP/PROC/WEB:starting instance 0",
                    "APP/PROC/WEB:starting instance 1",
                    "APP/PROC/WEB:oops",
                ]
                .iter()
                .all(|want| lines.iter().any(|line| line.starts_with(want)))
                    && lines.iter().any(|line| line.starts_with("RTR:web.apps.test.internal - ["))
            })
            .await;
        let envelope = &logs["envelopes"]["batch"][0];
        assert_eq!(envelope["source_id"], guid.as_str(), "{envelope}");
        let err = log_lines(&logs).into_iter().find(|l| l.ends_with("oops")).unwrap();
        assert!(err.starts_with("APP/PROC/WEB:"), "{err}");
        let (status, body, error) = through_router(&addr, "nope.apps.test.internal").await;
        assert_eq!((status, error.as_deref()), (404, Some("unknown_route")), "{body}");

        // Another user sees none of it and can change none of it.
        let user = api
            .ok(
                Method::POST,
                "/Users",
                Some(json!({"userName": "mallory", "password": "mallory-password",
                "emails": [{"value": "mallory@example.com"}]})),
            )
            .await;
        api.ok(Method::POST, "/v3/users", Some(json!({"guid": user["id"]}))).await;
        let mallory = Api::login(&server.url, "mallory", "mallory-password").await;
        let (status, _) = mallory.call(Method::GET, &format!("/v3/apps/{guid}"), None).await;
        assert_eq!(status, 404);
        let (status, _) = mallory.call(Method::POST, &format!("/v3/apps/{guid}/actions/stop"), None).await;
        assert_eq!(status, 404);
        let packages = api.ok(Method::GET, &format!("/v3/apps/{guid}/packages"), None).await;
        let package = packages["resources"][0]["guid"].clone();
        let (status, body) =
            mallory.call(Method::POST, "/v3/builds", Some(json!({"package": {"guid": package}}))).await;
        assert_eq!(status, 422, "{body}");
        let route = routes["resources"][0]["guid"].as_str().unwrap();
        let (status, _) = mallory
            .call(Method::POST, &format!("/v3/routes/{route}/destinations"), Some(json!({"destinations": []})))
            .await;
        assert_eq!(status, 404);
        let (status, _) = mallory.call(Method::GET, &format!("/api/v1/read/{guid}"), None).await;
        assert_eq!(status, 403, "another user may not read the app's logs");
        let (status, _, _) = mallory.apply_manifest(&space, "applications:\n- name: evil\n").await;
        assert_eq!(status, 404);
        assert_eq!(running(&api.ok(Method::GET, &stats_path, None).await), 2, "still running");

        // A staging that fails leaves the running droplet in place.
        let failed = api.stage(&guid, &format!("{}/apps/missing:1", registry.host)).await;
        assert_eq!(failed["state"], "FAILED", "{failed}");
        assert!(failed["error"].as_str().unwrap().starts_with("StagingError - Staging error:"), "{failed}");
        let current = api.ok(Method::GET, &format!("/v3/apps/{guid}/droplets/current"), None).await;
        assert_eq!(current["guid"], droplet_guid.as_str());
        assert_eq!(running(&api.ok(Method::GET, &stats_path, None).await), 2);

        // Scale down: one instance answers.
        api.ok(Method::POST, &format!("/v3/processes/{guid}/actions/scale"), Some(json!({"instances": 1}))).await;
        api.until(&stats_path, "1 instance", 60, |s| s["resources"].as_array().unwrap().len() == 1 && running(s) == 1)
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answers: BTreeSet<String> = {
                let mut a = BTreeSet::new();
                for _ in 0..6 {
                    a.insert(through_router(&addr, "web.apps.test.internal").await.1);
                }
                a
            };
            if answers.len() == 1 && answers.contains("hello from hearth on 0\n") {
                break;
            }
            assert!(Instant::now() < deadline, "after scaling to 1 only index 0 answers: {answers:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Stopped: the route answers 404 and the instance goes away.
        api.ok(Method::POST, &format!("/v3/apps/{guid}/actions/stop"), None).await;
        api.until(&stats_path, "stopped", 60, |s| running(s) == 0).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while through_router(&addr, "web.apps.test.internal").await.0 != 404 {
            assert!(Instant::now() < deadline, "a stopped app's route answers 404");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Deleted: nothing of it runs on the machine.
        let (status, _) = api.call(Method::DELETE, &format!("/v3/apps/{guid}"), None).await;
        assert_eq!(status, 202);
        let containers = server.root.join("node/containers/containers");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_dir(&containers).map(|d| d.count()).unwrap_or(0) > 0 {
            assert!(Instant::now() < deadline, "containers left after the app was deleted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
