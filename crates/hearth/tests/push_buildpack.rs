//! End to end, as root: an admin uploads buildpacks written as plain shell scripts (as
//! upstream CF buildpacks are zips of scripts), an app's bits are pushed and staged with
//! them (detect in position order, supply then finalize, release's default process type),
//! the droplet runs on the host stack with its `.profile.d` sourced, and answers through
//! the router. An app no buildpack detects fails with CF's NoAppDetectedError. An app bound
//! to a user-provided service sees VCAP_SERVICES and DATABASE_URL.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server};
use common::push::{Api, log_lines, running, through_router};
use common::uploads::zip_with_modes;
use reqwest::Method;
use serde_json::{Value, json};

/// The tests here take turns: each server allocates container addresses from the same
/// default network, so two at once could hand out the same address.
static ONE_SERVER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn buildpack(api: &Api, name: &str, position: u32, files: &[(&str, u32, &str)]) {
    let bp = api.ok(Method::POST, "/v3/buildpacks", Some(json!({"name": name, "position": position}))).await;
    assert_eq!(bp["state"], "AWAITING_UPLOAD", "{bp}");
    let path = format!("/v3/buildpacks/{}/upload", bp["guid"].as_str().unwrap());
    let (status, body) = api.upload(&path, "bits", &format!("{name}.zip"), &zip_with_modes(files), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "READY", "{body}");
}

/// Creates an app by manifest and uploads `files` as its package; answers (app, package).
async fn app_with_bits<C: AsRef<[u8]>>(
    api: &Api,
    space: &str,
    name: &str,
    extra: &str,
    files: &[(&str, u32, C)],
) -> (String, String) {
    let manifest = format!("applications:\n- name: {name}\n  memory: 64M\n  default-route: true\n{extra}");
    let (status, location, body) = api.apply_manifest(space, &manifest).await;
    assert_eq!(status, 202, "{body}");
    let job = location.unwrap().split_once("/v3/").map(|(_, p)| format!("/v3/{p}")).unwrap();
    api.until(&job, "the manifest job", 30, |j| j["state"] == "COMPLETE").await;
    let apps = api.ok(Method::GET, &format!("/v3/apps?names={name}&space_guids={space}"), None).await;
    let app = apps["resources"][0]["guid"].as_str().unwrap().to_string();
    (app.clone(), api.package_of(&app, files).await)
}

#[test]
fn an_app_is_staged_with_uploaded_shell_buildpacks_and_runs_its_droplet() {
    let _turn = one_at_a_time();
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
                (
                    "bin/supply",
                    0o755,
                    "#!/bin/sh\necho supplied > \"$3/$4/greeting\"\necho supplying for $CF_STACK\n\
                     grep -qE '^eth0\\s+00000000' /proc/net/route && echo staging has a network || echo no network\n",
                ),
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
            [
                "never_buildpack",
                "shell_buildpack",
                "staticfile_buildpack",
                "nodejs_buildpack",
                "python_buildpack",
                "binary_buildpack"
            ],
            "positions as asked; the built-ins in CF's order, binary last"
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
        let wanted = [
            "STG:-----> Supplying with shell_buildpack",
            "STG:supplying for cflinuxfs4",
            // Staging runs networked (CF's default staging security groups), so a
            // buildpack reaches a package index.
            "STG:staging has a network",
            "STG:finalized",
            "APP/PROC/WEB:serving on 8080",
        ];
        // The app may answer before its first line has been read from its output.
        let logs_path = format!("/api/v1/read/{app}?envelope_types=LOG&limit=1000");
        api.until(&logs_path, "the staging and app lines", 20, |l| {
            let lines = log_lines(l);
            wanted.iter().all(|want| lines.iter().any(|l| l == want))
        })
        .await;

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

        // A user-provided service bound by the manifest: the app sees VCAP_SERVICES and the
        // DATABASE_URL CF derives from it; a binding made while it runs applies on restart.
        let upsi = |name: &str, uri: &str| {
            json!({"type": "user-provided", "name": name, "credentials": {"uri": uri},
                   "relationships": {"space": {"data": {"guid": space}}}})
        };
        api.ok(Method::POST, "/v3/service_instances", Some(upsi("db", "postgresql://app:pw@db.internal:5432/app")))
            .await;
        let later = api.ok(Method::POST, "/v3/service_instances", Some(upsi("later", "mysql://u@my.internal/x"))).await;
        let procfile = "web: echo \"$DATABASE_URL\" > index.html && echo \"$VCAP_SERVICES\" >> index.html && \
                        exec busybox httpd -f -p $PORT -h .\n";
        let extra = "  buildpacks: [binary_buildpack]\n  services: [db]\n";
        let (envy, package) = app_with_bits(&api, &space, "envy", extra, &[("Procfile", 0o644, procfile)]).await;
        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build}");
        let droplet = json!({"data": {"guid": build["droplet"]["guid"]}});
        api.ok(Method::PATCH, &format!("/v3/apps/{envy}/relationships/current_droplet"), Some(droplet)).await;
        api.ok(Method::POST, &format!("/v3/apps/{envy}/actions/restart"), None).await;
        let seen = |want: usize| {
            let addr = addr.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    let (status, body, _) = through_router(&addr, "envy.apps.test.internal").await;
                    let vcap: Value =
                        body.lines().nth(1).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
                    if status == 200 && vcap["user-provided"].as_array().is_some_and(|a| a.len() == want) {
                        return (body.lines().next().unwrap_or("").to_string(), vcap);
                    }
                    assert!(Instant::now() < deadline, "envy never showed {want} services: {status} {body}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let (database_url, vcap) = seen(1).await;
        assert_eq!(database_url, "postgres://app:pw@db.internal:5432/app");
        assert_eq!(vcap["user-provided"][0]["name"], "db");
        assert_eq!(vcap["user-provided"][0]["credentials"]["uri"], "postgresql://app:pw@db.internal:5432/app");
        let rel = json!({"app": {"data": {"guid": envy}}, "service_instance": {"data": {"guid": later["guid"]}}});
        api.ok(Method::POST, "/v3/service_credential_bindings", Some(json!({"type": "app", "relationships": rel})))
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen(1).await.1["user-provided"].as_array().unwrap().len(), 1, "unchanged until a restart");
        api.ok(Method::POST, &format!("/v3/apps/{envy}/actions/restart"), None).await;
        let (database_url, vcap) = seen(2).await;
        assert_eq!(database_url, "postgres://app:pw@db.internal:5432/app", "still the first relational uri");
        assert_eq!(vcap["user-provided"][1]["name"], "later");
        api.ok(Method::POST, &format!("/v3/apps/{envy}/actions/stop"), None).await;

        // The built-in staticfile buildpack detects a Staticfile and serves `root` with pushstate,
        // and a precompressed `.gz` beside a file to clients that take gzip.
        let script = "console.log('static script, served compressed or not');\n".repeat(20);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(script.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let files: Vec<(&str, u32, Vec<u8>)> = vec![
            ("Staticfile", 0o644, b"root: public\npushstate: enabled\n".to_vec()),
            ("public/index.html", 0o644, b"<h1>static</h1>\n".to_vec()),
            ("public/css/site.css", 0o644, b"h1 { color: red }\n".to_vec()),
            ("public/js/app.js", 0o644, script.as_bytes().to_vec()),
            ("public/js/app.js.gz", 0o644, gz.clone()),
        ];
        let (site, package) = app_with_bits(&api, &space, "www", "", &files).await;
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
        let fetch = |accept: Option<&'static str>| {
            let mut request =
                reqwest::Client::new().get(format!("http://{addr}/js/app.js")).header("host", "www.apps.test.internal");
            if let Some(accept) = accept {
                request = request.header("accept-encoding", accept);
            }
            async move {
                let response = request.send().await.unwrap();
                let encoding = response.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_string());
                (response.status().as_u16(), encoding, response.bytes().await.unwrap().to_vec())
            }
        };
        let (status, encoding, body) = fetch(Some("br, gzip;q=0.8")).await;
        assert_eq!((status, encoding.as_deref()), (200, Some("gzip")));
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped).unwrap();
        assert_eq!((body.len(), unzipped), (gz.len(), script.clone()), "the precompressed file, as stored");
        assert_eq!(fetch(None).await, (200, None, script.as_bytes().to_vec()), "no gzip for a client that did not ask");
        api.ok(Method::POST, &format!("/v3/apps/{site}/actions/stop"), None).await;

        // Only admins manage buildpacks; a zip slip is refused.
        let bp = api.ok(Method::POST, "/v3/buildpacks", Some(json!({"name": "evil_buildpack"}))).await;
        let path = format!("/v3/buildpacks/{}/upload", bp["guid"].as_str().unwrap());
        let (status, body) =
            api.upload(&path, "bits", "evil.zip", &zip_with_modes(&[("../../evil", 0o755, "x")]), None).await;
        assert_eq!(status, 422, "{body}");
        let (status, _) =
            api.call(Method::DELETE, &format!("/v3/buildpacks/{}", bp["guid"].as_str().unwrap()), None).await;
        assert_eq!(status, 204);

        api.ok(Method::POST, &format!("/v3/apps/{app}/actions/stop"), None).await;
        api.until(&format!("/v3/processes/{app}/stats"), "stopped", 60, |s| running(s) == 0).await;
    });
}

/// An org and a space; answers the space's guid.
async fn space(api: &Api) -> String {
    let org = api.ok(Method::POST, "/v3/organizations", Some(json!({"name": "acme"}))).await;
    let space = api
        .ok(
            Method::POST,
            "/v3/spaces",
            Some(json!({"name": "dev", "relationships": {"organization": {"data": {"guid": org["guid"]}}}})),
        )
        .await;
    space["guid"].as_str().unwrap().to_string()
}

/// Runs `droplet` as `app`'s current droplet; answers the body its route serves once it answers.
async fn run_droplet(api: &Api, addr: &str, app: &str, droplet: &Value, host: &str) -> String {
    api.ok(
        Method::PATCH,
        &format!("/v3/apps/{app}/relationships/current_droplet"),
        Some(json!({"data": {"guid": droplet}})),
    )
    .await;
    api.ok(Method::POST, &format!("/v3/apps/{app}/actions/restart"), None).await;
    api.until(&format!("/v3/processes/{app}/stats"), "running", 90, |s| running(s) == 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, _) = through_router(addr, host).await;
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < deadline, "{host} never answered: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stg_lines(api: &Api, app: &str) -> Vec<String> {
    let logs = api.ok(Method::GET, &format!("/api/v1/read/{app}?envelope_types=LOG&limit=1000"), None).await;
    log_lines(&logs).into_iter().filter(|l| l.starts_with("STG:")).collect()
}

/// A wheel of one pure-Python module, as `pip wheel` would make it.
fn wheel(name: &str, version: &str, init_py: &str) -> Vec<u8> {
    let info = format!("{name}-{version}.dist-info");
    let mut files = vec![
        (format!("{name}/__init__.py"), init_py.to_string()),
        (format!("{info}/METADATA"), format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")),
        (format!("{info}/WHEEL"), "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_string()),
    ];
    let record =
        files.iter().map(|(path, _)| format!("{path},,\n")).collect::<String>() + &format!("{info}/RECORD,,\n");
    files.push((format!("{info}/RECORD"), record));
    let entries: Vec<(&str, u32, &str)> = files.iter().map(|(p, c)| (p.as_str(), 0o644, c.as_str())).collect();
    zip_with_modes(&entries)
}

#[test]
fn python_and_nodejs_apps_stage_offline_with_vendored_dependencies() {
    let _turn = one_at_a_time();
    let server = Server::start_with(&["--node-dir", "{root}/node", "--app-domain", "apps.test.internal"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let api = Api::login(&server.url, "admin", ADMIN_PASSWORD).await;
        let space = space(&api).await;

        // Python: requirements.txt names a wheel vendored in vendor/; app.py serves what it computes.
        let app_py = "import http.server, os, tinyanswer\n\
                      class Answer(http.server.BaseHTTPRequestHandler):\n    \
                          def do_GET(self):\n        \
                              body = ('the answer is %s\\n' % tinyanswer.answer()).encode()\n        \
                              self.send_response(200)\n        \
                              self.send_header('Content-Length', str(len(body)))\n        \
                              self.end_headers()\n        \
                              self.wfile.write(body)\n\
                      print('serving on', os.environ['PORT'])\n\
                      http.server.HTTPServer(('0.0.0.0', int(os.environ['PORT'])), Answer).serve_forever()\n";
        let whl = wheel("tinyanswer", "1.0", "def answer():\n    return 6 * 7\n");
        let files: Vec<(&str, u32, Vec<u8>)> = vec![
            ("requirements.txt", 0o644, b"tinyanswer==1.0\n".to_vec()),
            ("vendor/tinyanswer-1.0-py3-none-any.whl", 0o644, whl),
            ("app.py", 0o644, app_py.as_bytes().to_vec()),
        ];
        let (py, package) = app_with_bits(&api, &space, "py", "", &files).await;
        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build} {:#?}", stg_lines(&api, &py).await);
        let droplet =
            api.ok(Method::GET, &format!("/v3/droplets/{}", build["droplet"]["guid"].as_str().unwrap()), None).await;
        assert_eq!(droplet["buildpacks"][0]["name"], "python_buildpack", "{droplet}");
        assert_eq!(droplet["process_types"], json!({"web": "python3 app.py"}), "{droplet}");
        let body = run_droplet(&api, &addr, &py, &droplet["guid"], "py.apps.test.internal").await;
        assert_eq!(body, "the answer is 42\n");
        let lines = stg_lines(&api, &py).await;
        assert!(lines.iter().any(|l| l.contains("Installing requirements.txt from vendor/")), "{lines:#?}");
        api.ok(Method::POST, &format!("/v3/apps/{py}/actions/stop"), None).await;

        // Without vendored wheels (and no index it can reach), the build fails and says what to do.
        let (nowheels, package) = app_with_bits(
            &api,
            &space,
            "nowheels",
            "  env:\n    PIP_INDEX_URL: http://127.0.0.1:9/simple\n",
            &[("requirements.txt", 0o644, "tinyanswer==1.0\n"), ("app.py", 0o644, "print('hi')\n")],
        )
        .await;
        let failed = api.build(&package).await;
        assert_eq!(failed["state"], "FAILED", "{failed}");
        assert!(failed["error"].as_str().unwrap().starts_with("BuildpackCompileFailed"), "{failed}");
        let lines = stg_lines(&api, &nowheels).await;
        assert!(lines.iter().any(|l| l.contains("vendor the wheels")), "{lines:#?}");

        // Node.js: a vendored module, scripts.start run without npm.
        let server_js = "const http = require('http');\nconst greet = require('greeter');\n\
                         http.createServer((req, res) => res.end(greet('router') + '\\n'))\n  \
                         .listen(process.env.PORT, () => console.log('node listening on ' + process.env.PORT));\n";
        let (js, package) = app_with_bits(
            &api,
            &space,
            "js",
            "",
            &[
                (
                    "package.json",
                    0o644,
                    r#"{"name": "js", "dependencies": {"greeter": "1.0.0"}, "scripts": {"start": "node server.js"}}"#,
                ),
                ("server.js", 0o644, server_js),
                (
                    "node_modules/greeter/package.json",
                    0o644,
                    r#"{"name": "greeter", "version": "1.0.0", "main": "index.js"}"#,
                ),
                (
                    "node_modules/greeter/index.js",
                    0o644,
                    "module.exports = (who) => `hello ${who}, ${6 * 7} from greeter`;\n",
                ),
            ],
        )
        .await;
        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build} {:#?}", stg_lines(&api, &js).await);
        let droplet =
            api.ok(Method::GET, &format!("/v3/droplets/{}", build["droplet"]["guid"].as_str().unwrap()), None).await;
        assert_eq!(droplet["buildpacks"][0]["name"], "nodejs_buildpack", "{droplet}");
        assert_eq!(droplet["process_types"], json!({"web": "node server.js"}), "{droplet}");
        let body = run_droplet(&api, &addr, &js, &droplet["guid"], "js.apps.test.internal").await;
        assert_eq!(body, "hello router, 42 from greeter\n");
        let lines = stg_lines(&api, &js).await;
        assert!(lines.iter().any(|l| l == "STG:Using the vendored node_modules"), "{lines:#?}");
        api.ok(Method::POST, &format!("/v3/apps/{js}/actions/stop"), None).await;

        // A dependency not vendored cannot come from a registry the staging container cannot
        // reach (staging is networked: here the app names a registry that refuses).
        let (novendor, package) = app_with_bits(
            &api,
            &space,
            "novendor",
            "  env:\n    npm_config_registry: http://127.0.0.1:9/\n",
            &[("package.json", 0o644, r#"{"name": "novendor", "dependencies": {"left-pad": "1.3.0"}}"#)],
        )
        .await;
        let failed = api.build(&package).await;
        assert_eq!(failed["state"], "FAILED", "{failed}");
        assert!(failed["error"].as_str().unwrap().starts_with("BuildpackCompileFailed"), "{failed}");
        let lines = stg_lines(&api, &novendor).await;
        assert!(lines.iter().any(|l| l.contains("vendor node_modules")), "{lines:#?}");
    });
}

/// Starts a build of `package` with `extra` fields; answers it once it is no longer STAGING.
async fn build_with(api: &Api, package: &str, extra: Value) -> Value {
    let mut body = json!({"package": {"guid": package}});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let build = api.ok(Method::POST, "/v3/builds", Some(body)).await;
    api.until(&format!("/v3/builds/{}", build["guid"].as_str().unwrap()), "staging", 120, |b| b["state"] != "STAGING")
        .await
}

#[test]
fn the_build_cache_outlives_a_staging_and_staging_limits_fail_the_build_not_the_app() {
    let _turn = one_at_a_time();
    let server = Server::start_with(&[
        "--node-dir",
        "{root}/node",
        "--app-domain",
        "apps.test.internal",
        "--staging-timeout",
        "10s",
    ]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let api = Api::login(&server.url, "admin", ADMIN_PASSWORD).await;
        // Counts its stagings in its cache directory; an app's files ask it to overrun or overeat.
        let supply = "#!/bin/sh\nset -e\nn=$(cat \"$2/count\" 2>/dev/null || echo 0)\nn=$((n + 1))\n\
                      echo $n > \"$2/count\"\necho \"staging number $n\"\n\
                      if [ -f \"$1/slow\" ]; then echo sleeping; sleep 300; fi\n\
                      if [ -f \"$1/hungry\" ]; then echo eating; head -c 400M /dev/zero | tail; fi\n";
        buildpack(
            &api,
            "counting_buildpack",
            1,
            &[
                ("bin/detect", 0o755, "#!/bin/sh\n[ -f \"$1/count.me\" ] && echo counting\n"),
                ("bin/supply", 0o755, supply),
                ("bin/finalize", 0o755, "#!/bin/sh\nexit 0\n"),
            ],
        )
        .await;
        let space = space(&api).await;
        let procfile = "web: mkdir -p www && echo \"droplet $(cat version)\" > www/index.html && exec busybox httpd -f -p $PORT -h www\n";
        let files = |version: &'static str, extra: &'static str| {
            let mut files = vec![("count.me", 0o644, ""), ("Procfile", 0o644, procfile), ("version", 0o644, version)];
            if !extra.is_empty() {
                files.push((extra, 0o644, ""));
            }
            files
        };
        let (app, package) = app_with_bits(&api, &space, "counted", "", &files("1\n", "")).await;
        let first = api.build(&package).await;
        assert_eq!(first["state"], "STAGED", "{first}");
        assert_eq!(run_droplet(&api, &addr, &app, &first["droplet"]["guid"], "counted.apps.test.internal").await, "droplet 1\n");
        let cache = server.root.join(format!("data/blobs/buildpack_cache/{}/{app}", &app[..2]));
        assert!(cache.is_file(), "the build cache is kept at {}", cache.display());

        // The second staging sees what the first left in its cache.
        let package = api.package_of(&app, &files("2\n", "")).await;
        let second = api.build(&package).await;
        assert_eq!(second["state"], "STAGED", "{second}");
        let lines = stg_lines(&api, &app).await;
        for want in ["STG:staging number 1", "STG:staging number 2"] {
            assert!(lines.iter().any(|l| l == want), "{want} in {lines:#?}");
        }

        // Overrunning the staging time limit: CF's StagingTimeExpired, the container gone.
        let package = api.package_of(&app, &files("3\n", "slow")).await;
        let started = Instant::now();
        let slow = api.build(&package).await;
        assert_eq!(slow["state"], "FAILED", "{slow}");
        assert!(slow["error"].as_str().unwrap().starts_with("StagingTimeExpired"), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(60), "stopped at the limit: {:?}", started.elapsed());
        assert_eq!(slow["droplet"], Value::Null);

        // Running out of staging memory says so and how to give it more.
        let package = api.package_of(&app, &files("4\n", "hungry")).await;
        let hungry = build_with(&api, &package, json!({"staging_memory_in_mb": 64})).await;
        assert_eq!(hungry["state"], "FAILED", "{hungry}");
        let error = hungry["error"].as_str().unwrap();
        assert!(error.contains("ran out of memory (64 MB): push with a larger -m or staging memory"), "{error}");

        // Staging is a scheduler task the auction places: one no cell has room for fails at
        // once with CF's InsufficientResources. Staging tasks are not the app's CF tasks.
        let package = api.package_of(&app, &files("4\n", "")).await;
        let started = Instant::now();
        let huge = build_with(&api, &package, json!({"staging_memory_in_mb": 1_u64 << 40})).await;
        assert_eq!(huge["state"], "FAILED", "{huge}");
        let error = huge["error"].as_str().unwrap();
        assert_eq!(error, "InsufficientResources - insufficient resources: memory", "{huge}");
        assert!(started.elapsed() < Duration::from_secs(10), "failed at once: {:?}", started.elapsed());
        for path in ["/v3/tasks".to_string(), format!("/v3/apps/{app}/tasks")] {
            let tasks = api.ok(Method::GET, &path, None).await;
            assert_eq!(tasks["pagination"]["total_results"], 0, "{path}: {tasks}");
        }

        let containers = api.ok(Method::GET, "/hearth/v1/containers", None).await;
        let staging: Vec<&Value> = containers["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"].as_str().unwrap().starts_with("staging-"))
            .collect();
        assert!(staging.is_empty(), "no staging container is left: {staging:?}");
        // Failed builds left the running droplet alone.
        assert_eq!(through_router(&addr, "counted.apps.test.internal").await.1, "droplet 1\n");

        // The third successful staging counts on from the second; deleting the app deletes its cache.
        let package = api.package_of(&app, &files("5\n", "")).await;
        assert_eq!(api.build(&package).await["state"], "STAGED");
        assert!(stg_lines(&api, &app).await.iter().any(|l| l == "STG:staging number 3"));
        let (status, _) = api.call(Method::DELETE, &format!("/v3/apps/{app}"), None).await;
        assert_eq!(status, 202);
        let deadline = Instant::now() + Duration::from_secs(30);
        while cache.exists() {
            assert!(Instant::now() < deadline, "the build cache outlived its app");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
