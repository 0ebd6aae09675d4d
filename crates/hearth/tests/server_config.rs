//! `hearth server`'s scale-out and edge settings, as an operator gives them: HTTPS on its
//! own address with a certificate picked by SNI (the API and apps answer over it), and the
//! blobstore on an S3-compatible server (moto, from PyPI) instead of the data directory —
//! a pushed package lands in the bucket, nothing under `DATA_DIR/blobs`. Settings that
//! cannot work stop the start with a message naming what to fix. A start after a stop
//! fails the builds the stop interrupted.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{ADMIN_PASSWORD, Server, free_port};
use hearth_blobstore::{BlobStore, BlobStoreConfig, Namespace, S3Config};
use serde_json::json;

/// A self-signed certificate for `localhost` and `*.apps.test.internal`: (cert, key) paths.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,DNS:*.apps.test.internal"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (apt install openssl)");
    assert!(status.success());
    (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned())
}

#[test]
fn https_serves_the_platform_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("hearth-tls-{}", std::process::id()));
    let (cert, key) = self_signed(&dir);
    let https = format!("127.0.0.1:{}", free_port());
    let server =
        Server::start_with(&["--no-containers", "--tls-listen", &https, "--tls-cert", &cert, "--tls-key", &key]);
    let port = https.rsplit(':').next().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .resolve("localhost", https.parse().unwrap())
            .build()
            .unwrap();
        let root: serde_json::Value = client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .expect("the certificate is trusted for localhost")
            .json()
            .await
            .unwrap();
        assert!(root["links"]["cloud_controller_v3"]["href"].is_string(), "{root}");
        // A client that does not trust the certificate is refused at the handshake.
        let strict = reqwest::Client::builder().resolve("localhost", https.parse().unwrap()).build().unwrap();
        assert!(strict.get(format!("https://localhost:{port}/")).send().await.is_err());
    });
    drop(server);

    // A certificate without an HTTPS address, or an unreadable one, stops the start.
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["server", "--no-containers", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--tls-cert", &cert, "--tls-key", &key]).contains("--tls-cert needs --tls-listen"));
    let missing = dir.join("nope.pem").to_string_lossy().into_owned();
    let err = run(&["--tls-listen", &https, "--tls-cert", &missing, "--tls-key", &key]);
    assert!(err.contains("cannot read TLS file") && err.contains("nope.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// moto's S3 server on a free loopback port with a `hearth` bucket; stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        // moto checks no signature: a bare PUT makes the bucket.
        let make_bucket = || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            write!(s, "PUT /hearth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            out.starts_with("HTTP/1.1 200").then_some(())
        };
        while make_bucket().is_none() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn packages_go_to_the_s3_blobstore_the_config_file_names() {
    let moto = Moto::start();
    let dir = std::env::temp_dir().join(format!("hearth-s3-config-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/index.html"), "kept in S3\n").unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "[blobstore]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"hearth\"\npath_style = true\n",
            moto.endpoint
        ),
    )
    .unwrap();
    // Without credentials the start stops and says where they go.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["server", "--no-containers", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("nodata"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env_remove("HEARTH_S3_ACCESS_KEY_ID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("HEARTH_S3_ACCESS_KEY_ID"), "{err}");

    let mut with_keys = std::fs::read_to_string(&config).unwrap();
    with_keys.push_str("access_key_id = \"testing\"\nsecret_access_key = \"testing\"\n");
    std::fs::write(&config, with_keys).unwrap();
    let server = Server::start_with(&["--no-containers", "--config", config.to_str().unwrap()]);
    server.hearth(&["login", "-a", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]).ok();
    for args in [&["create-org", "o"][..], &["target", "-o", "o"], &["create-space", "s"], &["target", "-s", "s"]] {
        server.hearth(args).ok();
    }
    server.hearth(&["push", "site", "-p", dir.join("app").to_str().unwrap(), "--no-start"]).ok();

    let s3 = BlobStore::open(&BlobStoreConfig::S3(S3Config {
        endpoint: Some(moto.endpoint.clone()),
        bucket: "hearth".into(),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        path_style: true,
    }))
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (packages, buildpacks) = runtime.block_on(async {
        (s3.list(Namespace::Packages).await.unwrap(), s3.list(Namespace::Buildpacks).await.unwrap())
    });
    assert_eq!(packages.len(), 1, "the pushed package is in the bucket: {packages:?}");
    assert!(!buildpacks.is_empty(), "so are the built-in buildpacks");
    let local = server.root.join("data/blobs");
    assert!(!local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(), "nothing under {local:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A build a stop of the server interrupted while it staged fails at the next start with
/// a reason that says to stage again (nothing waits for it any more); others stay as they were.
#[test]
fn a_build_left_staging_by_a_stop_fails_at_the_next_start() {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
        let data_dir = std::env::temp_dir().join(format!("hearth-interrupted-{}", std::process::id()));
        let mut config = hearth::config::ServerConfig::for_dir(&data_dir, common::database_url().await);
        config.admin_password = Some("admin-secret".into());
        config.admin_client_secret = Some("client-secret".into());
        let mut platform = common::TestPlatform::start_with(config.clone()).await;
        let token = platform.admin_token().await;
        let org = platform.create_org(&token, "o").await;
        let space = platform.create_space(&token, &org, "s").await;
        let (_, app) = platform
            .post("/v3/apps", &token, json!({"name": "a", "relationships": {"space": {"data": {"guid": space}}}}))
            .await;
        let app = app["guid"].as_str().unwrap().to_string();
        let (status, package) = platform
            .post("/v3/packages", &token, json!({"type": "bits", "relationships": {"app": {"data": {"guid": app}}}}))
            .await;
        assert_eq!(status, 201, "{package}");
        let server = platform.server.take().unwrap();
        let build = |guid: &str, state: &str| hearth_store::Build {
            guid: guid.into(),
            app_guid: app.clone(),
            package_guid: package["guid"].as_str().unwrap().into(),
            droplet_guid: None,
            state: state.into(),
            error: None,
            lifecycle: json!({"type": "buildpack", "data": {}}),
            staging_memory_in_mb: 1024,
            staging_disk_in_mb: 1024,
            staging_log_rate_limit_bytes_per_second: -1,
            created_by: json!({}),
            created_at: hearth_store::now(),
            updated_at: hearth_store::now(),
        };
        let (interrupted, failed) = (uuid(), uuid());
        {
            let mut conn = server.store.conn().await.unwrap();
            hearth_store::insert(&mut conn, &build(&interrupted, "STAGING")).await.unwrap();
            let mut done = build(&failed, "FAILED");
            done.error = Some("NoAppDetectedError - nothing".into());
            hearth_store::insert(&mut conn, &done).await.unwrap();
        }
        server.stop().await.unwrap();
        let again = hearth::server::Server::start(config).await.unwrap();
        platform.url = again.url.clone();
        platform.server = Some(again);
        let token = platform.admin_token().await;
        let (_, b) = platform.get(&format!("/v3/builds/{interrupted}"), &token).await;
        assert_eq!(b["state"], "FAILED", "{b}");
        let error = b["error"].as_str().unwrap();
        assert!(error.starts_with("StagingError") && error.contains("stage the package again"), "{error}");
        let (_, b) = platform.get(&format!("/v3/builds/{failed}"), &token).await;
        assert_eq!(b["error"], "NoAppDetectedError - nothing", "an ended build is left as it was");
        platform.stop().await;
    });
}

fn uuid() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
