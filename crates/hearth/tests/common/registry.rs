//! A real registry (Debian's `docker-registry`) on a loopback port, filled over the
//! distribution API, and a busybox image layer: what image pulls and docker pushes are
//! tested against.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;

use super::cli::free_port;

/// A `docker-registry` on a loopback port; stopped on drop.
pub struct Registry {
    child: Child,
    dir: PathBuf,
    pub host: String,
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("apt install docker-registry");
        let registry = Registry { child, dir: dir.to_path_buf(), host };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = TcpStream::connect(&registry.host) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return registry;
                }
            }
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pushes a one-layer OCI image (plain tar layer) as `name:tag` and returns its reference.
    /// Pushes `apps/web:1`: busybox running `script` with `sh -c` as user `app`, port 8080
    /// exposed (the web app the push tests deploy); answers its reference.
    pub fn push_shell_app(&self, script: &str) -> String {
        self.push(
            "apps/web",
            "1",
            &busybox_layer(),
            serde_json::json!({"architecture": "amd64", "os": "linux",
                   "config": {"Cmd": ["/bin/sh", "-c", script], "ExposedPorts": {"8080/tcp": {}}, "User": "app"}}),
        )
    }

    pub fn push(&self, name: &str, tag: &str, layer: &[u8], config: Value) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://{}/v2/{name}", self.host);
        let upload = |bytes: Vec<u8>| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let digest = sha256(&bytes);
                let start = client.post(format!("{base}/blobs/uploads/")).send().await.unwrap();
                assert_eq!(start.status(), 202, "upload start");
                let location = start.headers()["location"].to_str().unwrap().to_string();
                let location =
                    if location.starts_with("http") { location } else { format!("http://{}{location}", self.host) };
                let sep = if location.contains('?') { '&' } else { '?' };
                let put = client.put(format!("{location}{sep}digest={digest}")).body(bytes).send().await.unwrap();
                assert_eq!(put.status(), 201, "blob upload");
                digest
            }
        };
        runtime.block_on(async {
            let layer_digest = upload(layer.to_vec()).await;
            let mut config = config;
            config["rootfs"] = json!({"type": "layers", "diff_ids": [layer_digest]});
            let config_bytes = serde_json::to_vec(&config).unwrap();
            let config_size = config_bytes.len();
            let config_digest = upload(config_bytes).await;
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
            });
            let put = client
                .put(format!("{base}/manifests/{tag}"))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(serde_json::to_vec(&manifest).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(put.status(), 201, "manifest upload: {}", put.text().await.unwrap_or_default());
        });
        format!("{}/{name}:{tag}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A layer with busybox as `/bin/sh` and friends, and a user `app` (uid 1500).
pub fn busybox_layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        match link {
            Some(target) => tar.append_link(&mut header, path, target).unwrap(),
            None => tar.append_data(&mut header, path, data).unwrap(),
        }
    };
    for dir in ["bin/", "etc/", "tmp/", "proc/", "dev/", "sys/"] {
        add(dir, tar::EntryType::Directory, 0o755, b"", None);
    }
    let busybox = std::fs::read("/bin/busybox").expect("apt install busybox-static");
    add("bin/busybox", tar::EntryType::Regular, 0o755, &busybox, None);
    for applet in ["sh", "echo", "id", "cat", "true", "sleep", "mkdir", "httpd"] {
        add(&format!("bin/{applet}"), tar::EntryType::Symlink, 0o777, b"", Some("busybox"));
    }
    add("etc/passwd", tar::EntryType::Regular, 0o644, b"root:x:0:0::/:/bin/sh\napp:x:1500:1500::/tmp:/bin/sh\n", None);
    add("etc/group", tar::EntryType::Regular, 0o644, b"root:x:0:\napp:x:1500:\n", None);
    tar.into_inner().unwrap()
}
