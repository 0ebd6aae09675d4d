//! Test support: a real registry (Debian's `docker-registry`) on a loopback port, and images built
//! and pushed by the tests themselves.

#![allow(dead_code)] // each test binary uses part of this

pub mod cutting_proxy;
mod token;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_images::{Digest, Metrics, Store};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::json;

pub const BUSYBOX: &str = "/bin/busybox";

/// A registry process serving from a temporary directory; stopped when dropped.
pub struct Registry {
    pub host: String,
    pub dir: tempfile::TempDir,
    pub auth: Option<(String, String)>,
    child: Child,
    _tokens: Option<token::TokenServer>,
}

enum AuthMode {
    None,
    Basic,
    Token,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_with(AuthMode::None, None)
    }

    /// A registry that sends clients to a token server (`auth: token`), which checks basic
    /// credentials and issues JWTs scoped to the requested repositories.
    pub fn start_with_token_auth(user: &str, password: &str) -> Self {
        Self::start_with(AuthMode::Token, Some((user.to_string(), password.to_string())))
    }

    /// A registry that requires HTTP basic auth (htpasswd, bcrypt) for every request.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Self {
        Self::start_with(AuthMode::Basic, Some((user.to_string(), password.to_string())))
    }

    fn start_with(mode: AuthMode, auth: Option<(String, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: hearth-test\n",
            dir.path().join("data").display()
        );
        let mut tokens = None;
        match (mode, &auth) {
            (AuthMode::Basic, Some((user, password))) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("apt install apache2-utils");
                assert!(out.status.success());
                std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
                config += &format!(
                    "auth:\n  htpasswd:\n    realm: hearth-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                );
            }
            (AuthMode::Token, Some((user, password))) => {
                let server = token::TokenServer::start(dir.path(), user, password);
                config += &format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm,
                    token::SERVICE,
                    token::ISSUER,
                    dir.path().join("cert.pem").display()
                );
                tokens = Some(server);
            }
            _ => {}
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("apt install docker-registry");
        let registry = Self { host, dir, auth, child, _tokens: tokens };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = TcpStream::connect(&self.host) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "registry did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tokens the token server issued (0 for registries without token auth).
    pub fn tokens_issued(&self) -> usize {
        self._tokens.as_ref().map_or(0, |t| t.issued.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Access-log lines of successful GETs of one blob (full or ranged).
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.blob_get_lines(digest).filter(|l| l.contains("\" 200 ") || l.contains("\" 206 ")).count()
    }

    /// Access-log lines of ranged GETs of one blob (answered 206).
    pub fn ranged_blob_gets(&self, digest: &str) -> usize {
        self.blob_get_lines(digest).filter(|l| l.contains("\" 206 ")).count()
    }

    fn blob_get_lines(&self, digest: &str) -> impl Iterator<Item = String> {
        let wanted = format!("/blobs/{digest} HTTP");
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&wanted))
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// The registry's own file holding a blob (to corrupt it, as a broken mirror would).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }

    fn client(&self) -> (Client, RegistryAuth) {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![self.host.clone()]),
            ..Default::default()
        });
        let auth = match &self.auth {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        };
        (client, auth)
    }

    /// Pushes an image's blobs and manifest; returns the manifest's digest.
    pub async fn push(&self, name: &str, image: &TestImage) -> String {
        let reference: Reference = self.reference(name).parse().unwrap();
        let (client, auth) = self.client();
        client.auth(&reference, &auth, RegistryOperation::Push).await.unwrap();
        for layer in &image.layers {
            client.push_blob(&reference, layer.blob.clone(), &layer.digest).await.unwrap();
        }
        let config = image.config_bytes();
        client.push_blob(&reference, config.clone(), &sha(&config)).await.unwrap();
        let manifest = image.manifest_bytes();
        self.push_manifest(&client, &reference, &manifest, image.format.manifest_type()).await
    }

    /// Pushes an index (or Docker manifest list) naming already pushed manifests.
    pub async fn push_index(&self, name: &str, format: Format, entries: &[(&str, &str, usize, &str)]) -> String {
        let reference: Reference = self.reference(name).parse().unwrap();
        let (client, auth) = self.client();
        client.auth(&reference, &auth, RegistryOperation::Push).await.unwrap();
        let manifests: Vec<_> = entries
            .iter()
            .map(|(digest, arch, size, os)| {
                json!({"mediaType": format.manifest_type(), "digest": digest, "size": size,
                       "platform": {"architecture": arch, "os": os}})
            })
            .collect();
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": format.index_type(), "manifests": manifests
        }))
        .unwrap();
        self.push_manifest(&client, &reference, &body, format.index_type()).await
    }

    async fn push_manifest(&self, client: &Client, reference: &Reference, body: &[u8], media_type: &str) -> String {
        client
            .push_manifest_raw(reference, body.to_vec(), http::HeaderValue::from_str(media_type).unwrap())
            .await
            .unwrap();
        sha(body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OCI or Docker v2 (schema 2) media types.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }
    fn index_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.index.v1+json",
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.config.v1+json",
            Format::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
}

/// One compressed layer.
#[derive(Clone)]
pub struct TestLayer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    pub media_type: &'static str,
}

impl TestLayer {
    pub fn gzip(tar: Vec<u8>, format: Format) -> Self {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let media_type = match format {
            Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        };
        Self::new(gz.finish().unwrap(), &tar, media_type)
    }

    pub fn zstd(tar: Vec<u8>) -> Self {
        Self::new(zstd::encode_all(&tar[..], 3).unwrap(), &tar, "application/vnd.oci.image.layer.v1.tar+zstd")
    }

    fn new(blob: Vec<u8>, tar: &[u8], media_type: &'static str) -> Self {
        Self { digest: sha(&blob), diff_id: sha(tar), blob, media_type }
    }
}

/// An image built in the test.
#[derive(Clone)]
pub struct TestImage {
    pub format: Format,
    pub layers: Vec<TestLayer>,
    pub architecture: &'static str,
    pub diff_ids: Option<Vec<String>>,
}

impl TestImage {
    pub fn new(format: Format, layers: Vec<TestLayer>) -> Self {
        Self { format, layers, architecture: "amd64", diff_ids: None }
    }

    pub fn config_bytes(&self) -> Vec<u8> {
        let diff_ids = self.diff_ids.clone().unwrap_or_else(|| self.layers.iter().map(|l| l.diff_id.clone()).collect());
        serde_json::to_vec(&json!({
            "architecture": self.architecture, "os": "linux",
            "config": {"Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/home", "User": "1000:1000",
                       "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["cat /etc/motd"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}
        }))
        .unwrap()
    }

    pub fn manifest_bytes(&self) -> Vec<u8> {
        let config = self.config_bytes();
        let layers: Vec<_> = self
            .layers
            .iter()
            .map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()}))
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": self.format.manifest_type(),
            "config": {"mediaType": self.format.config_type(), "digest": sha(&config), "size": config.len()},
            "layers": layers
        }))
        .unwrap()
    }
}

pub fn sha(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

/// Builds a tar the ordinary way (names are checked by `tar`; hostile names go in raw).
pub struct TarBuilder(tar::Builder<Vec<u8>>);

impl Default for TarBuilder {
    fn default() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }
}

impl TarBuilder {
    fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    pub fn dir(mut self, path: &str) -> Self {
        self.0.append_data(&mut Self::header(tar::EntryType::Directory, 0, 0o755), path, &b""[..]).unwrap();
        self
    }
    pub fn dir_mode(mut self, path: &str, mode: u32) -> Self {
        self.0.append_data(&mut Self::header(tar::EntryType::Directory, 0, mode), path, &b""[..]).unwrap();
        self
    }
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        self.0.append_data(&mut Self::header(tar::EntryType::Regular, data.len(), mode), path, data).unwrap();
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.0.append_link(&mut Self::header(tar::EntryType::Symlink, 0, 0o777), path, target).unwrap();
        self
    }
    /// An entry whose name is written raw, `..` and all.
    pub fn raw_file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, data.len(), 0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The base layer: busybox (static) as `/bin/busybox` with `sh`, `cat`, `ls` links, and files the
/// second layer removes.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).expect("apt install busybox-static");
    let mut tar = TarBuilder::default().dir("bin").file("bin/busybox", &busybox, 0o755);
    for applet in ["sh", "cat", "ls", "echo", "test"] {
        tar = tar.symlink(&format!("bin/{applet}"), "busybox");
    }
    tar.dir("etc")
        .file("etc/motd", b"hello from layer one\n", 0o644)
        .file("etc/removed", b"gone in layer two\n", 0o644)
        .dir("var")
        .dir("var/cache")
        .file("var/cache/old", b"hidden by an opaque dir\n", 0o644)
        .dir("home")
        .dir("tmp")
        .build()
}

/// The second layer: a whiteout, an opaque directory and a new file.
pub fn whiteout_layer() -> Vec<u8> {
    TarBuilder::default()
        .file("etc/.wh.removed", b"", 0o644)
        .file("var/cache/.wh..wh..opq", b"", 0o644)
        .file("var/cache/new", b"from layer two\n", 0o644)
        .file("etc/added", b"added in layer two\n", 0o644)
        .build()
}

/// The two-layer busybox image: gzip base, zstd top.
pub fn busybox_image(format: Format) -> TestImage {
    let top = match format {
        Format::Oci => TestLayer::zstd(whiteout_layer()),
        Format::Docker => TestLayer::gzip(whiteout_layer(), format),
    };
    TestImage::new(format, vec![TestLayer::gzip(busybox_layer(), format), top])
}

/// A fresh store in a temporary directory.
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// Everything a store holds besides its empty skeleton: layers, image records, temporary files,
/// root filesystems and mounts.
pub fn leftovers(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["layers/sha256", "images", "tmp", "tmp/downloads", "rootfs"] {
        for entry in std::fs::read_dir(store.root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if !path.ends_with("tmp/downloads") {
                out.push(path.display().to_string());
            }
        }
    }
    for mount in hearth_images::mounts_under(store.root()).unwrap() {
        out.push(format!("mount {}", mount.display()));
    }
    out
}

pub fn metrics(store: &Store) -> Metrics {
    store.metrics()
}

pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Loop devices whose backing file lies under `dir` (`/sys/block/loopN/loop/backing_file`).
pub fn loop_devices_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap() {
        let path = entry.unwrap().path().join("loop/backing_file");
        if let Ok(backing) = std::fs::read_to_string(&path)
            && backing.starts_with(dir.to_str().unwrap())
        {
            out.push(format!("{}: {}", path.display(), backing.trim()));
        }
    }
    out
}

/// Destroys every root filesystem of a store when dropped, so a failing test leaves no mounts or
/// loop devices behind.
pub struct DestroyAll(pub Store);

impl Drop for DestroyAll {
    fn drop(&mut self) {
        for id in self.0.rootfs_ids().unwrap_or_default() {
            let _ = self.0.destroy_rootfs(&id);
        }
    }
}
