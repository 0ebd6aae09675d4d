//! Size limits as an operator sets them (`[limits]` in `hearth server`'s config file, or
//! flags): a server started with small limits refuses a package, droplet or buildpack
//! upload over its limit, an archive that unpacks to more than `max_unpacked_bytes` and a
//! JSON body over `max_request_body_bytes` with a 413 in CF's error format that names the
//! limit and the setting to raise — and stores nothing (no blob, no state change, no
//! scratch files) — while one just under each limit goes through. Bad limits stop the
//! start with a message naming the setting. No containers: these are API-only.

mod common;

use clap::Parser;
use common::TestPlatform;
use common::cli::free_port;
use common::uploads::{droplet_tgz, incompressible, multipart, zip_of};
use hearth::config::{ServerArgs, ServerConfig};
use hearth_blobstore::{BlobStore, BlobStoreConfig, Namespace};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
}

/// What an upload answered: status and JSON.
async fn send(p: &TestPlatform, token: &str, path: &str, (content_type, body): (String, Vec<u8>)) -> (u16, Value) {
    let resp = p
        .http
        .post(format!("{}{path}", p.url))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Asserts a 413 in CF's format whose detail names `setting` and the limit `size`.
fn assert_refused(what: &str, (status, v): &(u16, Value), setting: &str, size: &str) {
    assert_eq!(*status, 413, "{what}: {v}");
    let e = &v["errors"][0];
    assert_eq!(e["title"], "CF-RequestEntityTooLarge", "{what}: {v}");
    let detail = e["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(setting) && detail.contains(size), "{what} names {setting} and {size}: {detail}");
}

/// Every blob the platform holds, per namespace, and the files left in its scratch spaces
/// (uploads and assembly under `DATA/tmp`, blobs being written under `DATA/blobs/tmp`).
async fn leftovers(blobs: &BlobStore, data: &std::path::Path) -> (usize, usize, usize, usize) {
    let n = |ns| async move { blobs.list(ns).await.unwrap().len() };
    let count = |dir: std::path::PathBuf| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let scratch = count(data.join("tmp")) + count(data.join("blobs/tmp"));
    (n(Namespace::Packages).await, n(Namespace::Droplets).await, n(Namespace::Buildpacks).await, scratch)
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_and_bodies_over_the_configured_limits_are_refused_and_leave_nothing() {
    let dir = std::env::temp_dir().join(format!("hearth-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hearth.toml");
    std::fs::write(
        &file,
        "[limits]\nmax_package_bytes = \"64K\"\nmax_droplet_bytes = 65536\nmax_unpacked_bytes = \"256K\"\n\
         max_request_body_bytes = \"16K\"\n",
    )
    .unwrap();
    let data = dir.join("data");
    let cli = Cli::parse_from([
        "server",
        "--no-containers",
        "--config",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--max-buildpack-bytes",
        "48K",
    ]);
    let mut config = ServerConfig::resolve(&cli.server).unwrap();
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("admin-secret".into());
    let p = TestPlatform::start_with(config).await;
    let admin = p.admin_token().await;
    let blobs = BlobStore::open(&BlobStoreConfig::Local { root: data.join("blobs") }).unwrap();

    let org = p.create_org(&admin, "limits").await;
    let space = p.create_space(&admin, &org, "dev").await;
    let in_space = json!({"space": {"data": {"guid": space}}});
    let (s, app) = p.post("/v3/apps", &admin, json!({"name": "app", "relationships": in_space})).await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    let app = app["guid"].as_str().unwrap().to_string();
    let for_app = json!({"app": {"data": {"guid": app}}});
    let before = leftovers(&blobs, &data).await;

    // Packages: 64 KiB of zip at most, 256 KiB unpacked.
    let (s, pkg) = p.post("/v3/packages", &admin, json!({"type": "bits", "relationships": for_app})).await;
    assert_eq!(s, StatusCode::CREATED, "{pkg}");
    let upload = format!("/v3/packages/{}/upload", pkg["guid"].as_str().unwrap());
    let form = |zip: &[u8]| multipart(&[("resources", None, b"[]"), ("bits", Some("package.zip"), zip)]);
    let over = zip_of(&[("big.bin", &incompressible(70 << 10))], true);
    assert_refused("a 70 KiB package", &send(&p, &admin, &upload, form(&over)).await, "max_package_bytes", "64 KiB");
    let bomb = zip_of(&[("zeros.bin", &vec![0u8; 300 << 10])], false);
    assert!(bomb.len() < 64 << 10, "the bomb itself is under the upload limit");
    let unpacked = send(&p, &admin, &upload, form(&bomb)).await;
    assert_refused("a package unpacking to 300 KiB", &unpacked, "max_unpacked_bytes", "256 KiB");
    assert_eq!(leftovers(&blobs, &data).await, before, "refused packages leave nothing");
    let (s, v) = p.get(&format!("/v3/packages/{}", pkg["guid"].as_str().unwrap()), &admin).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("AWAITING_UPLOAD")), "{v}");
    let under = zip_of(&[("index.html", &incompressible(60 << 10))], true);
    assert!(under.len() < 64 << 10);
    let (s, v) = send(&p, &admin, &upload, form(&under)).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("READY")), "a 60 KiB package is taken: {v}");
    let (packages, ..) = leftovers(&blobs, &data).await;
    assert_eq!(packages, before.0 + 1);

    // Droplets: 64 KiB of tgz at most (checked before anything else happens).
    let before = leftovers(&blobs, &data).await;
    let (s, d) = p.post("/v3/droplets", &admin, json!({"relationships": for_app})).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let droplet = d["guid"].as_str().unwrap().to_string();
    let upload = format!("/v3/droplets/{droplet}/upload");
    let over = droplet_tgz(&[("big.bin", &incompressible(70 << 10))]);
    let refused = send(&p, &admin, &upload, multipart(&[("bits", Some("droplet.tgz"), &over)])).await;
    assert_refused("a 70 KiB droplet", &refused, "max_droplet_bytes", "64 KiB");
    let bomb = droplet_tgz(&[("zeros.bin", &vec![0u8; 300 << 10])]);
    let refused = send(&p, &admin, &upload, multipart(&[("bits", Some("droplet.tgz"), &bomb)])).await;
    assert_refused("a droplet unpacking to 300 KiB", &refused, "max_unpacked_bytes", "256 KiB");
    assert_eq!(leftovers(&blobs, &data).await, before, "refused droplets leave nothing");
    let (_, v) = p.get(&format!("/v3/droplets/{droplet}"), &admin).await;
    assert_eq!(v["state"], "AWAITING_UPLOAD", "{v}");
    // Under the limit it passes the size and content checks; this platform runs no
    // containers, so the import itself is what refuses it.
    let under = droplet_tgz(&[("run.sh", &incompressible(60 << 10))]);
    let (s, v) = send(&p, &admin, &upload, multipart(&[("bits", Some("droplet.tgz"), &under)])).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["errors"][0]["detail"].as_str().unwrap().contains("runs no containers"), "{v}");

    // Buildpacks: 48 KiB (the flag) at most.
    let before = leftovers(&blobs, &data).await;
    let (s, bp) = p.post("/v3/buildpacks", &admin, json!({"name": "tiny_buildpack"})).await;
    assert_eq!(s, StatusCode::CREATED, "{bp}");
    let upload = format!("/v3/buildpacks/{}/upload", bp["guid"].as_str().unwrap());
    let over = zip_of(&[("bin/detect", &incompressible(50 << 10))], true);
    let refused = send(&p, &admin, &upload, multipart(&[("bits", Some("bp.zip"), &over)])).await;
    assert_refused("a 50 KiB buildpack", &refused, "max_buildpack_bytes", "48 KiB");
    assert_eq!(leftovers(&blobs, &data).await, before, "a refused buildpack leaves nothing");
    let under = zip_of(&[("bin/detect", b"#!/bin/sh\nexit 1\n"), ("pad", &incompressible(40 << 10))], true);
    let (s, v) = send(&p, &admin, &upload, multipart(&[("bits", Some("bp.zip"), &under)])).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("READY")), "{v}");
    assert_eq!(leftovers(&blobs, &data).await.2, before.2 + 1);

    // JSON bodies: 16 KiB at most.
    let (_, apps) = p.get("/v3/apps", &admin).await;
    let big = json!({"name": "big", "relationships": in_space, "environment_variables": {"X": "x".repeat(17 << 10)}});
    let (s, v) = p.post("/v3/apps", &admin, big).await;
    assert_refused("a 17 KiB JSON body", &(s.as_u16(), v), "max_request_body_bytes", "16 KiB");
    let (_, after) = p.get("/v3/apps", &admin).await;
    assert_eq!(after["pagination"]["total_results"], apps["pagination"]["total_results"], "no app was made");
    let small =
        json!({"name": "small", "relationships": in_space, "environment_variables": {"X": "x".repeat(8 << 10)}});
    let (s, v) = p.call(Method::POST, "/v3/apps", Some(&admin), Some(small)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    p.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_limits_stop_the_start_naming_the_setting() {
    let dir = std::env::temp_dir().join(format!("hearth-bad-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hearth.toml");
    let start = |toml: &str, flags: &[&str]| {
        std::fs::write(&file, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["server", "--no-containers", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml} {flags:?} must not start");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = start("[limits]\nmax_droplet_bytes = \"huge\"\n", &[]);
    assert!(err.contains("max_droplet_bytes") && err.contains("is not a size"), "{err}");
    let err = start("[limits]\nmax_archive_entries = 0\n", &[]);
    assert!(err.contains("max_archive_entries"), "{err}");
    let err = start("", &["--max-package-bytes", "0"]);
    assert!(err.contains("--max-package-bytes") && err.contains("at least 1 byte"), "{err}");
    assert!(!dir.join("data").join("hearth.db").exists(), "a refused start creates nothing");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_hearth")).args(["server", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--max-package-bytes", "--max-droplet-bytes", "--max-buildpack-bytes", "--max-unpacked-bytes"] {
        assert!(help.contains(flag), "--help documents {flag}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
