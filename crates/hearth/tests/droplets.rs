//! End to end, as root: a staged droplet is downloaded (a CF droplet tgz), uploaded to a
//! second app (202 and a job, then STAGED with the same layer), copied to a third
//! (`?source_guid=`), and all three answer through the router; hostile droplet tgzs are
//! refused with 422 and store nothing; with the layer gone from the image store an app
//! still starts (the cell imports it from the blobstore); a package is copied too.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server};
use common::push::{Api, running, through_router};
use reqwest::Method;
use serde_json::{Value, json};

/// A gzipped tar whose entry names and links are written raw (the tar crate refuses `..`).
fn raw_tgz(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn tgz_names(tgz: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    a.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.file_type().unwrap().is_dir() { files_under(&e.path()) } else { 1 }).sum()
}

async fn app(api: &Api, space: &str, name: &str) -> String {
    let manifest = format!(
        "applications:\n- name: {name}\n  memory: 64M\n  default-route: true\n  buildpacks: [binary_buildpack]\n"
    );
    let (status, location, body) = api.apply_manifest(space, &manifest).await;
    assert_eq!(status, 202, "{body}");
    let job = location.unwrap().split_once("/v3/").map(|(_, p)| format!("/v3/{p}")).unwrap();
    api.until(&job, "the manifest job", 30, |j| j["state"] == "COMPLETE").await;
    let apps = api.ok(Method::GET, &format!("/v3/apps?names={name}&space_guids={space}"), None).await;
    apps["resources"][0]["guid"].as_str().unwrap().to_string()
}

async fn run_droplet(api: &Api, addr: &str, app: &str, host: &str, droplet: &str, want: &str) {
    let path = format!("/v3/apps/{app}/relationships/current_droplet");
    api.ok(Method::PATCH, &path, Some(json!({"data": {"guid": droplet}}))).await;
    api.ok(Method::POST, &format!("/v3/apps/{app}/actions/restart"), None).await;
    api.until(&format!("/v3/processes/{app}/stats"), "running", 90, |s| running(s) == 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, _) = through_router(addr, host).await;
        if status == 200 {
            assert_eq!(body, want, "{host}");
            return;
        }
        assert!(Instant::now() < deadline, "{host} never answered: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stop(api: &Api, app: &str) {
    api.ok(Method::POST, &format!("/v3/apps/{app}/actions/stop"), None).await;
    api.until(&format!("/v3/processes/{app}/stats"), "stopped", 60, |s| running(s) == 0).await;
}

#[test]
fn droplets_are_downloaded_uploaded_copied_and_run_without_their_layer() {
    let server = Server::start_with(&["--node-dir", "{root}/node", "--app-domain", "apps.test.internal"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let api = Api::login(&server.url, "admin", ADMIN_PASSWORD).await;
        let org = api.ok(Method::POST, "/v3/organizations", Some(json!({"name": "acme"}))).await;
        let rel = json!({"organization": {"data": {"guid": org["guid"]}}});
        let space = api.ok(Method::POST, "/v3/spaces", Some(json!({"name": "dev", "relationships": rel}))).await;
        let space = space["guid"].as_str().unwrap().to_string();

        // Stage app one with the built-in binary buildpack.
        let one = app(&api, &space, "one").await;
        let files = [("Procfile", 0o644, "web: exec busybox httpd -f -p $PORT -h .\n"), ("index.html", 0o644, "hi\n")];
        let package = api.package_of(&one, &files).await;
        let build = api.build(&package).await;
        assert_eq!(build["state"], "STAGED", "{build}");
        let d1 = build["droplet"]["guid"].as_str().unwrap().to_string();
        run_droplet(&api, &addr, &one, "one.apps.test.internal", &d1, "hi\n").await;

        // Its droplet downloads as CF's droplet tgz, with the checksum the API shows.
        let response = api
            .client
            .get(format!("{}/v3/droplets/{d1}/download", api.url))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let tgz = response.bytes().await.unwrap().to_vec();
        let names = tgz_names(&tgz);
        for want in ["app/index.html", "app/Procfile", "staging_info.yml"] {
            assert!(names.iter().any(|n| n.trim_start_matches("./") == want), "{want} in {names:?}");
        }
        let droplet1 = api.ok(Method::GET, &format!("/v3/droplets/{d1}"), None).await;
        let sha = {
            use sha2::Digest;
            hex(&sha2::Sha256::digest(&tgz))
        };
        assert_eq!(droplet1["checksum"]["value"], sha.as_str());

        // An empty droplet for app two, AWAITING_UPLOAD; bad requests change nothing.
        let two = app(&api, &space, "two").await;
        let (status, body) = api
            .call(
                Method::POST,
                "/v3/droplets",
                Some(json!({"relationships": {"app": {"data": {"guid": two}}}, "process_types": "web"})),
            )
            .await;
        assert_eq!((status.as_u16(), &body["errors"][0]["detail"]), (422, &json!("Process types must be an object")));
        let created = api
            .ok(
                Method::POST,
                "/v3/droplets",
                Some(json!({"relationships": {"app": {"data": {"guid": two}}},
                            "process_types": {"web": "exec busybox httpd -f -p $PORT -h ."}})),
            )
            .await;
        assert_eq!(created["state"], "AWAITING_UPLOAD", "{created}");
        let d2 = created["guid"].as_str().unwrap().to_string();
        let upload_path = format!("/v3/droplets/{d2}/upload");

        // Hostile droplets: 422, the droplet still awaits its bits, the blobstore is unchanged.
        let blobs = server.root.join("data/blobs");
        let stored_before = files_under(&blobs);
        let reg = tar::EntryType::Regular;
        let hostile: Vec<(&str, Vec<u8>)> = vec![
            ("a name climbing out", raw_tgz(&[("app/../../evil", reg, "", b"x")])),
            ("an absolute name", raw_tgz(&[("/etc/evil", reg, "", b"x")])),
            (
                "a link leaving the tree",
                raw_tgz(&[
                    ("app/", tar::EntryType::Directory, "", b""),
                    ("app/l", tar::EntryType::Symlink, "../../../etc", b""),
                ]),
            ),
            ("a device", raw_tgz(&[("app/tty", tar::EntryType::Char, "", b"")])),
            ("no app directory", raw_tgz(&[("deps/x", reg, "", b"x")])),
            ("not a tgz at all", b"just some bytes".to_vec()),
        ];
        for (what, bytes) in &hostile {
            let (status, body) = api.upload(&upload_path, "bits", "d.tgz", bytes, None).await;
            assert_eq!(status, 422, "{what}: {body}");
            assert_eq!(body["errors"][0]["title"], "CF-UnprocessableEntity", "{what}: {body}");
        }
        let (status, body) = api.upload(&upload_path, "resources", "d.tgz", &tgz, None).await;
        assert_eq!(status, 422, "only bits: {body}");
        assert_eq!(files_under(&blobs), stored_before, "nothing was stored");
        let still = api.ok(Method::GET, &format!("/v3/droplets/{d2}"), None).await;
        assert_eq!(still["state"], "AWAITING_UPLOAD");

        // The real one: 202 and a job; then STAGED with the same bits and layer as app one's.
        let boundary = "hearth-droplet-test";
        let mut form =
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"bits\"; filename=\"d.tgz\"\r\n\r\n")
                .into_bytes();
        form.extend_from_slice(&tgz);
        form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = api
            .client
            .post(format!("{}{upload_path}", api.url))
            .bearer_auth(&api.token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let job = response.headers()["location"].to_str().unwrap().to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["state"], "PROCESSING_UPLOAD", "{body}");
        let job = job.split_once("/v3/").map(|(_, p)| format!("/v3/{p}")).unwrap();
        let done = api.until(&job, "the upload job", 60, |j| j["state"] != "PROCESSING").await;
        assert_eq!(done["state"], "COMPLETE", "{done}");
        let droplet2 = api.ok(Method::GET, &format!("/v3/droplets/{d2}"), None).await;
        assert_eq!(droplet2["state"], "STAGED", "{droplet2}");
        assert_eq!(droplet2["checksum"], droplet1["checksum"]);
        assert_eq!(droplet2["execution_metadata"], droplet1["execution_metadata"], "one tgz, one layer");
        let (status, _) = api.upload(&upload_path, "bits", "d.tgz", &tgz, None).await;
        assert_eq!(status, 422, "a droplet is uploaded once");
        run_droplet(&api, &addr, &two, "two.apps.test.internal", &d2, "hi\n").await;

        // A copy for app three: COPYING, then STAGED; it runs too.
        let three = app(&api, &space, "three").await;
        let copy = api
            .ok(
                Method::POST,
                &format!("/v3/droplets?source_guid={d1}"),
                Some(json!({"relationships": {"app": {"data": {"guid": three}}}})),
            )
            .await;
        assert_eq!(copy["relationships"]["app"]["data"]["guid"], three.as_str());
        let d3 = copy["guid"].as_str().unwrap().to_string();
        api.until(&format!("/v3/droplets/{d3}"), "the copy", 30, |d| d["state"] == "STAGED").await;
        let (status, _) = api
            .call(
                Method::POST,
                "/v3/droplets?source_guid=nope",
                Some(json!({"relationships": {"app": {"data": {"guid": three}}}})),
            )
            .await;
        assert_eq!(status, 404);
        run_droplet(&api, &addr, &three, "three.apps.test.internal", &d3, "hi\n").await;

        // The layer lost from the image store: the next start imports it from the blobstore.
        for a in [&one, &two, &three] {
            stop(&api, a).await;
        }
        let meta: Value = serde_json::from_str(droplet2["execution_metadata"].as_str().unwrap()).unwrap();
        let hex = meta["layer"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        let layer = server.root.join("node/images/layers/sha256").join(&hex);
        assert!(layer.is_dir(), "{}", layer.display());
        std::fs::remove_dir_all(&layer).unwrap();
        run_droplet(&api, &addr, &two, "two.apps.test.internal", &d2, "hi\n").await;
        assert!(layer.is_dir(), "imported again");
        stop(&api, &two).await;

        // A bits package copied to another app: COPYING, then READY with the same bits.
        let four = app(&api, &space, "four").await;
        let copied = api
            .ok(
                Method::POST,
                &format!("/v3/packages?source_guid={package}"),
                Some(json!({"relationships": {"app": {"data": {"guid": four}}}})),
            )
            .await;
        let p4 = copied["guid"].as_str().unwrap().to_string();
        let ready = api.until(&format!("/v3/packages/{p4}"), "the package copy", 30, |p| p["state"] == "READY").await;
        let original = api.ok(Method::GET, &format!("/v3/packages/{package}"), None).await;
        assert_eq!(ready["data"]["checksum"], original["data"]["checksum"]);
        let mut zip = Vec::new();
        let response = api
            .client
            .get(format!("{}/v3/packages/{p4}/download", api.url))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().as_ref().read_to_end(&mut zip).unwrap();
        assert!(zip.starts_with(b"PK"));
        let (status, body) = api
            .call(
                Method::POST,
                &format!("/v3/packages?source_guid={package}&x=1"),
                Some(json!({"relationships": {"app": {"data": {"guid": four}}}})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
