//! App bits through the API as the cf CLI sends them: resource matching, multipart
//! uploads of a zip plus already-known files, downloads, and hostile or wrong uploads that
//! are refused with CF's errors and change nothing.

mod common;

use std::io::{Read, Write};

use common::TestPlatform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Digest as _;

fn sha1_hex(data: &[u8]) -> String {
    sha1::Sha1::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A zip of `(path, mode, content)` entries (a path ending in `/` is a directory).
fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, mode, content) in entries {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        if path.ends_with('/') {
            zip.add_directory(*path, options).unwrap();
        } else {
            zip.start_file(*path, options).unwrap();
            zip.write_all(content).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

/// The entries of a zip: path → (mode, content).
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.insert(entry.name().unwrap().to_string(), (entry.unix_mode().unwrap_or(0) & 0o777, content));
    }
    out
}

fn resource(path: &str, mode: &str, content: &[u8]) -> Value {
    json!({"path": path, "mode": mode, "checksum": {"value": sha1_hex(content)}, "size_in_bytes": content.len()})
}

/// A multipart body as the cf CLI writes it: `resources` then `bits` (package.zip).
fn multipart(resources: &Value, zip: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "hearth-test-boundary-7d1c";
    let mut body = Vec::new();
    write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"resources\"\r\n\r\n{resources}\r\n").unwrap();
    if let Some(zip) = zip {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"bits\"; filename=\"package.zip\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(zip);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    p: &TestPlatform,
    token: &str,
    package: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = p
        .http
        .post(format!("{}/v3/packages/{package}/upload", p.url))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn download(p: &TestPlatform, token: &str, package: &str) -> Vec<u8> {
    let response =
        p.http.get(format!("{}/v3/packages/{package}/download", p.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn bits_are_matched_uploaded_assembled_and_downloaded_and_hostile_uploads_change_nothing() {
    let p = TestPlatform::start().await;
    let token = p.admin_token().await;
    let org = p.create_org(&token, "bits-org").await;
    let space = p.create_space(&token, &org, "bits-space").await;
    let (_, app) = p
        .post("/v3/apps", &token, json!({"name": "site", "relationships": {"space": {"data": {"guid": space}}}}))
        .await;
    let app = app["guid"].as_str().unwrap().to_string();
    let new_package = || async {
        let (s, pkg) = p
            .post("/v3/packages", &token, json!({"type": "bits", "relationships": {"app": {"data": {"guid": app}}}}))
            .await;
        assert_eq!(s, 201, "{pkg}");
        assert_eq!(pkg["state"], "AWAITING_UPLOAD");
        pkg["guid"].as_str().unwrap().to_string()
    };

    let index: &[u8] = b"<h1>hello</h1>\n";
    let script: &[u8] = b"#!/bin/sh\necho hi\n";
    let big = vec![b'x'; 70_000];
    let files =
        [resource("index.html", "644", index), resource("bin/run.sh", "755", script), resource("big.txt", "644", &big)];

    // Nothing is known yet.
    let (s, matched) = p.post("/v3/resource_matches", &token, json!({"resources": files})).await;
    assert_eq!((s, matched.clone()), (StatusCode::CREATED, json!({"resources": []})));

    // First push: everything in the zip.
    let first = new_package().await;
    let zip = zip_of(&[
        ("index.html", 0o644, index),
        ("bin/", 0o755, b""),
        ("bin/run.sh", 0o755, script),
        ("big.txt", 0o644, &big),
    ]);
    let (ct, body) = multipart(&json!([]), Some(&zip));
    let (s, pkg) = upload(&p, &token, &first, &ct, body).await;
    assert_eq!(s, 200, "{pkg}");
    assert_eq!(pkg["state"], "READY");
    assert!(pkg["data"]["checksum"]["value"].as_str().is_some_and(|v| v.len() == 64), "{pkg}");
    let tree = unzip(&download(&p, &token, &first).await);
    assert_eq!(tree["index.html"], (0o644, index.to_vec()));
    assert_eq!(tree["bin/run.sh"], (0o755, script.to_vec()));

    // Now the platform has them: a re-push sends only the changed file.
    let (_, matched) = p.post("/v3/resource_matches", &token, json!({"resources": files})).await;
    let mut paths: Vec<&str> =
        matched["resources"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["big.txt", "bin/run.sh", "index.html"], "{matched}");
    assert_eq!(
        matched["resources"].as_array().unwrap().iter().find(|r| r["path"] == "bin/run.sh").unwrap()["mode"],
        "755"
    );
    let second = new_package().await;
    let changed: &[u8] = b"<h1>hello again</h1>\n";
    let known = json!([resource("bin/run.sh", "755", script), resource("big.txt", "644", &big)]);
    let (ct, body) = multipart(&known, Some(&zip_of(&[("index.html", 0o644, changed)])));
    let sent = body.len();
    let (s, pkg) = upload(&p, &token, &second, &ct, body).await;
    assert_eq!(s, 200, "{pkg}");
    assert!(sent < 2_000, "only the changed file travels: {sent} bytes");
    let tree = unzip(&download(&p, &token, &second).await);
    assert_eq!(tree["index.html"].1, changed);
    assert_eq!(tree["bin/run.sh"], (0o755, script.to_vec()));
    assert_eq!(tree["big.txt"].1.len(), big.len());

    // Hostile and wrong uploads: refused in CF's format, the package still waits for bits.
    let third = new_package().await;
    for (what, content_type, body, status, code) in [
        (
            "zip slip",
            multipart(&json!([]), Some(&zip_of(&[("../escape.txt", 0o644, b"x")]))).0,
            multipart(&json!([]), Some(&zip_of(&[("../escape.txt", 0o644, b"x")]))).1,
            422,
            "CF-UnprocessableEntity",
        ),
        (
            "absolute path",
            multipart(&json!([]), None).0,
            multipart(&json!([]), Some(&zip_of(&[("/etc/evil", 0o644, b"x")]))).1,
            422,
            "CF-UnprocessableEntity",
        ),
        (
            "not a zip",
            multipart(&json!([]), None).0,
            multipart(&json!([]), Some(b"this is not a zip")).1,
            422,
            "CF-UnprocessableEntity",
        ),
        (
            "an unknown resource",
            multipart(&json!([]), None).0,
            multipart(&json!([resource("x", "644", b"never uploaded")]), None).1,
            422,
            "CF-UnprocessableEntity",
        ),
        (
            "a bad checksum",
            multipart(&json!([]), None).0,
            multipart(&json!([{"path": "x", "checksum": {"value": "zz"}, "size_in_bytes": 1}]), None).1,
            422,
            "CF-UnprocessableEntity",
        ),
        (
            "malformed multipart",
            "multipart/form-data; boundary=nope".to_string(),
            b"garbage".to_vec(),
            400,
            "CF-MessageParseError",
        ),
        ("nothing at all", multipart(&json!([]), None).0, multipart(&json!([]), None).1, 422, "CF-UnprocessableEntity"),
    ] {
        let (s, body) = upload(&p, &token, &third, &content_type, body).await;
        assert_eq!(s.as_u16(), status, "{what}: {body}");
        assert_eq!(body["errors"][0]["title"], code, "{what}: {body}");
        let (_, pkg) = p.get(&format!("/v3/packages/{third}"), &token).await;
        assert_eq!(pkg["state"], "AWAITING_UPLOAD", "{what} changed the package");
    }
    assert!(!p.data_dir.join("escape.txt").exists() && !std::path::Path::new("/etc/evil").exists());
    let (s, body) = p.post("/v3/resource_matches", &token, json!({"resources": [{"path": "a"}]})).await;
    assert_eq!(s, 422, "{body}");

    // Uploaded once is uploaded; another user cannot upload or download.
    let (ct, body) = multipart(&json!([]), Some(&zip));
    assert_eq!(upload(&p, &token, &first, &ct, body).await.0, 422);
    p.create_user(&token, "eve", "eve-password").await;
    let eve = p.user_token("eve", "eve-password").await;
    let (ct, body) = multipart(&json!([]), Some(&zip));
    assert_eq!(upload(&p, &eve, &third, &ct, body).await.0, 404);
    let (s, _) = p.call(Method::GET, &format!("/v3/packages/{first}/download"), Some(&eve), None).await;
    assert_eq!(s, 404);
    p.stop().await;
}

/// Names of the buildpacks in position order.
async fn buildpack_names(p: &TestPlatform, token: &str) -> Vec<String> {
    let (status, list) = p.get("/v3/buildpacks", token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["resources"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn built_in_buildpacks_missing_by_name_are_added_once_before_binary_on_restart() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let data_dir = std::env::temp_dir().join(format!("hearth-it-builtins-{}-{nanos}", std::process::id()));
    let mut config = hearth::config::ServerConfig::for_dir(&data_dir, common::database_url().await);
    config.admin_password = Some("admin-secret".into());
    config.admin_client_secret = Some("client-secret".into());
    let mut p = TestPlatform::start_with(config.clone()).await;
    let token = p.admin_token().await;
    let cf_order = ["staticfile_buildpack", "nodejs_buildpack", "python_buildpack", "binary_buildpack"];
    assert_eq!(buildpack_names(&p, &token).await, cf_order);

    // A data dir from before nodejs and python were built in, with an operator's buildpack last.
    let (_, list) = p.get("/v3/buildpacks", &token).await;
    for b in list["resources"].as_array().unwrap() {
        if ["nodejs_buildpack", "python_buildpack"].contains(&b["name"].as_str().unwrap()) {
            let path = format!("/v3/buildpacks/{}", b["guid"].as_str().unwrap());
            assert_eq!(p.call(Method::DELETE, &path, Some(&token), None).await.0, StatusCode::NO_CONTENT);
        }
    }
    let (status, mine) = p.post("/v3/buildpacks", &token, json!({"name": "mine_buildpack"})).await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert_eq!(buildpack_names(&p, &token).await, ["staticfile_buildpack", "binary_buildpack", "mine_buildpack"]);

    for _ in 0..2 {
        p.server.take().unwrap().stop().await.expect("server stops cleanly");
        p = TestPlatform::start_with(config.clone()).await;
        let token = p.admin_token().await;
        let (status, list) = p.get("/v3/buildpacks", &token).await;
        assert_eq!(status, StatusCode::OK);
        let positions: Vec<(String, i64)> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["name"].as_str().unwrap().to_string(), b["position"].as_i64().unwrap()))
            .collect();
        let want = [cf_order.as_slice(), &["mine_buildpack"]].concat();
        let want: Vec<(String, i64)> = want.iter().zip(1..).map(|(n, i)| (n.to_string(), i)).collect();
        assert_eq!(positions, want, "added once, before binary_buildpack; positions stay 1..n");
    }
    p.stop().await;
}
