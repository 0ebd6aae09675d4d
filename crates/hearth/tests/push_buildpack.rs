//! End to end, as root: an admin uploads buildpacks written as plain shell scripts (as
//! upstream CF buildpacks are zips of scripts), an app's bits are pushed and staged with
//! them (detect in position order, supply then finalize, release's default process type),
//! the droplet runs on the host stack with its `.profile.d` sourced, and answers through
//! the router. An app no buildpack detects fails with CF's NoAppDetectedError.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server};
use common::push::{Api, log_lines, running, through_router};
use reqwest::Method;
use serde_json::{Value, json};

/// A zip of `(path, mode, content)`.
fn zip_of(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, mode, content) in entries {
        zip.start_file(*path, zip::write::SimpleFileOptions::default().unix_permissions(*mode)).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

async fn buildpack(api: &Api, name: &str, position: u32, files: &[(&str, u32, &str)]) {
    let bp = api.ok(Method::POST, "/v3/buildpacks", Some(json!({"name": name, "position": position}))).await;
    assert_eq!(bp["state"], "AWAITING_UPLOAD", "{bp}");
    let path = format!("/v3/buildpacks/{}/upload", bp["guid"].as_str().unwrap());
    let (status, body) = api.upload(&path, "bits", &format!("{name}.zip"), &zip_of(files), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "READY", "{body}");
}

/// Creates an app by manifest and uploads `files` as its package; answers (app, package).
async fn app_with_bits(
    api: &Api,
    space: &str,
    name: &str,
    extra: &str,
    files: &[(&str, u32, &str)],
) -> (String, String) {
    let manifest = format!("applications:\n- name: {name}\n  memory: 64M\n  default-route: true\n{extra}");
    let (status, location, body) = api.apply_manifest(space, &manifest).await;
    assert_eq!(status, 202, "{body}");
    let job = location.unwrap().split_once("/v3/").map(|(_, p)| format!("/v3/{p}")).unwrap();
    api.until(&job, "the manifest job", 30, |j| j["state"] == "COMPLETE").await;
    let apps = api.ok(Method::GET, &format!("/v3/apps?names={name}&space_guids={space}"), None).await;
    let app = apps["resources"][0]["guid"].as_str().unwrap().to_string();
    let package = api
        .ok(
            Method::POST,
            "/v3/packages",
            Some(json!({"type": "bits", "relationships": {"app": {"data": {"guid": app}}}})),
        )
        .await;
    let package = package["guid"].as_str().unwrap().to_string();
    let (status, body) =
        api.upload(&format!("/v3/packages/{package}/upload"), "bits", "package.zip", &zip_of(files), Some("[]")).await;
    assert_eq!((status.as_u16(), &body["state"]), (200, &json!("READY")), "{body}");
    (app, package)
}

#[test]
fn an_app_is_staged_with_uploaded_shell_buildpacks_and_runs_its_droplet() {
    let server = Server::start_with(&["--node-dir", "{root}/node", "--app-domain", "apps.test.internal"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let api = Api::login(&server.url, "admin", ADMIN_PASSWORD).await;
        // First in line, but it detects nothing it knows.
        buildpack(
            &api,
            "never_buildpack",
            1,
            &[("bin/detect", 0o755, "#!/bin/sh\nexit 1\n"), ("bin/compile", 0o755, "#!/bin/sh\nexit 1\n")],
        )
        .await;
        // A supply/finalize buildpack for apps with a run.sh.
        buildpack(
            &api,
            "shell_buildpack",
            2,
            &[
                ("bin/detect", 0o755, "#!/bin/sh\n[ -f \"$1/run.sh\" ] && echo shell 1.0\n"),
                ("bin/supply", 0o755, "#!/bin/sh\necho supplied > \"$3/$4/greeting\"\necho supplying for $CF_STACK\n"),
                (
                    "bin/finalize",
                    0o755,
                    "#!/bin/sh\nmkdir -p \"$1/.profile.d\"\n\
                     echo 'export GREETING=$(cat $DEPS_DIR/0/greeting)' > \"$1/.profile.d/greeting.sh\"\n\
                     echo finalized\n",
                ),
                ("bin/release", 0o755, "#!/bin/sh\nprintf -- '---\\ndefault_process_types:\\n  web: sh run.sh\\n'\n"),
            ],
        )
        .await;
        let buildpacks = api.ok(Method::GET, "/v3/buildpacks", None).await;
        let names: Vec<&str> =
            buildpacks["resources"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["never_buildpack", "shell_buildpack", "staticfile_buildpack", "binary_buildpack"],
            "positions as asked; the built-in binary buildpack stays last"
        );

        let org = api.ok(Method::POST, "/v3/organizations", Some(json!({"name": "acme"}))).await;
        let space = api
            .ok(
                Method::POST,
                "/v3/spaces",
                Some(json!({"name": "dev", "relationships": {"organization": {"data": {"guid": org["guid"]}}}})),
            )
            .await;
        let space = space["guid"].as_str().unwrap().to_string();
        let run = "mkdir -p www && echo \"hello from $GREETING on $CF_INSTANCE_INDEX\" > www/index.html\n\
                   echo serving on $PORT\nexec busybox httpd -f -p $PORT -h www\n";
        let (app, package) = app_with_bits(&api, &space, "site", "", &[("run.sh", 0o755, run)]).await;

        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build}");
        let droplet =
            api.ok(Method::GET, &format!("/v3/droplets/{}", build["droplet"]["guid"].as_str().unwrap()), None).await;
        assert_eq!(droplet["process_types"], json!({"web": "sh run.sh"}), "{droplet}");
        assert_eq!(droplet["buildpacks"][0]["name"], "shell_buildpack", "{droplet}");
        assert_eq!(droplet["buildpacks"][0]["detect_output"], "shell 1.0", "{droplet}");
        assert_eq!(droplet["lifecycle"]["type"], "buildpack");
        assert!(droplet["checksum"]["value"].as_str().is_some_and(|v| v.len() == 64), "{droplet}");
        api.ok(
            Method::PATCH,
            &format!("/v3/apps/{app}/relationships/current_droplet"),
            Some(json!({"data": {"guid": droplet["guid"]}})),
        )
        .await;
        api.ok(Method::POST, &format!("/v3/apps/{app}/actions/restart"), None).await;
        api.until(&format!("/v3/processes/{app}/stats"), "running", 90, |s| running(s) == 1).await;
        let web = api.ok(Method::GET, &format!("/v3/processes/{app}"), None).await;
        assert_eq!(web["command"], "sh run.sh", "the detected start command: {web}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body, _) = through_router(&addr, "site.apps.test.internal").await;
            if status == 200 {
                assert_eq!(body, "hello from supplied on 0\n");
                break;
            }
            assert!(Instant::now() < deadline, "the app never answered: {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let logs = api.ok(Method::GET, &format!("/api/v1/read/{app}?envelope_types=LOG&limit=1000"), None).await;
        let lines = log_lines(&logs);
        for want in [
            "STG:-----> Supplying with shell_buildpack",
            "STG:supplying for cflinuxfs4",
            "STG:finalized",
            "APP/PROC/WEB:serving on 8080",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want} in {lines:#?}");
        }

        // Nothing detects a directory of text: CF's NoAppDetectedError, no droplet.
        let (_, package) = app_with_bits(&api, &space, "notes", "", &[("README.txt", 0o644, "just words\n")]).await;
        let failed: Value = api.build(&package).await;
        assert_eq!(failed["state"], "FAILED", "{failed}");
        assert!(failed["error"].as_str().unwrap().starts_with("NoAppDetectedError"), "{failed}");
        assert_eq!(failed["droplet"], Value::Null);

        // The built-in binary buildpack, named by the app: the Procfile says how to start.
        let procfile = "web: exec busybox httpd -f -p $PORT -h .\n";
        let (bin, package) = app_with_bits(
            &api,
            &space,
            "bin",
            "  buildpacks: [binary_buildpack]\n",
            &[("Procfile", 0o644, procfile), ("index.html", 0o644, "binary app\n")],
        )
        .await;
        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build}");
        api.ok(
            Method::PATCH,
            &format!("/v3/apps/{bin}/relationships/current_droplet"),
            Some(json!({"data": {"guid": build["droplet"]["guid"]}})),
        )
        .await;
        api.ok(Method::POST, &format!("/v3/apps/{bin}/actions/restart"), None).await;
        api.until(&format!("/v3/processes/{bin}/stats"), "running", 90, |s| running(s) == 1).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while through_router(&addr, "bin.apps.test.internal").await.1 != "binary app\n" {
            assert!(Instant::now() < deadline, "the binary app never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        api.ok(Method::POST, &format!("/v3/apps/{bin}/actions/stop"), None).await;

        // The built-in staticfile buildpack detects a Staticfile and serves `root` with pushstate.
        let (site, package) = app_with_bits(
            &api,
            &space,
            "www",
            "",
            &[
                ("Staticfile", 0o644, "root: public\npushstate: enabled\n"),
                ("public/index.html", 0o644, "<h1>static</h1>\n"),
                ("public/css/site.css", 0o644, "h1 { color: red }\n"),
            ],
        )
        .await;
        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build}");
        let droplet =
            api.ok(Method::GET, &format!("/v3/droplets/{}", build["droplet"]["guid"].as_str().unwrap()), None).await;
        assert_eq!(droplet["buildpacks"][0]["name"], "staticfile_buildpack", "{droplet}");
        api.ok(
            Method::PATCH,
            &format!("/v3/apps/{site}/relationships/current_droplet"),
            Some(json!({"data": {"guid": droplet["guid"]}})),
        )
        .await;
        api.ok(Method::POST, &format!("/v3/apps/{site}/actions/restart"), None).await;
        api.until(&format!("/v3/processes/{site}/stats"), "running", 90, |s| running(s) == 1).await;
        let get = |path: &'static str| {
            let addr = addr.clone();
            async move {
                let response = reqwest::Client::new()
                    .get(format!("http://{addr}{path}"))
                    .header("host", "www.apps.test.internal")
                    .send()
                    .await
                    .unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        // Running first, then routed: the route table follows the instance's RUNNING event.
        let deadline = Instant::now() + Duration::from_secs(20);
        while get("/").await.0 == 404 {
            assert!(Instant::now() < deadline, "www never got its route");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(get("/").await, (200, "<h1>static</h1>\n".to_string()));
        assert_eq!(get("/css/site.css").await, (200, "h1 { color: red }\n".to_string()));
        assert_eq!(get("/deep/client/route").await, (200, "<h1>static</h1>\n".to_string()), "pushstate");
        assert!(!get("/../../../etc/passwd").await.1.contains("root:"), "nothing outside root is served");
        assert!(!get("/Staticfile").await.1.contains("pushstate"), "files beside root are not served");
        api.ok(Method::POST, &format!("/v3/apps/{site}/actions/stop"), None).await;

        // Only admins manage buildpacks; a zip slip is refused.
        let bp = api.ok(Method::POST, "/v3/buildpacks", Some(json!({"name": "evil_buildpack"}))).await;
        let path = format!("/v3/buildpacks/{}/upload", bp["guid"].as_str().unwrap());
        let (status, body) = api.upload(&path, "bits", "evil.zip", &zip_of(&[("../../evil", 0o755, "x")]), None).await;
        assert_eq!(status, 422, "{body}");
        let (status, _) =
            api.call(Method::DELETE, &format!("/v3/buildpacks/{}", bp["guid"].as_str().unwrap()), None).await;
        assert_eq!(status, 204);

        api.ok(Method::POST, &format!("/v3/apps/{app}/actions/stop"), None).await;
        api.until(&format!("/v3/processes/{app}/stats"), "stopped", 60, |s| running(s) == 0).await;
    });
}
