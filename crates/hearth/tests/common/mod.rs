//! A real platform for integration tests: `hearth server` in-process on a free loopback
//! port, with its own data directory and database (SQLite, or PostgreSQL when
//! `HEARTH_TEST_DATABASE_URL` names a server to create databases on), and an HTTP
//! client that talks to it as any client would.
#![allow(dead_code)]

pub mod cli;
pub mod lrps;
pub mod push;
pub mod registry;
pub mod uploads;

use std::path::PathBuf;

use hearth::config::ServerConfig;
use hearth::server::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct TestPlatform {
    pub url: String,
    pub server: Option<Server>,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    pub admin_password: String,
    pub admin_client_secret: String,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{}", t & 0xffff_ffff, N.fetch_add(1, Ordering::Relaxed))
}

/// The database URL a new platform should use: SQLite in its data dir by default.
pub async fn database_url() -> Option<String> {
    let admin = std::env::var("HEARTH_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    let name = unique("hearth_test").to_lowercase();
    Some(hearth_store::create_postgres_database(&admin, &name).await.expect("create a PostgreSQL test database"))
}

impl TestPlatform {
    pub async fn start() -> TestPlatform {
        let data_dir = std::env::temp_dir().join(unique("hearth-it"));
        let mut config = ServerConfig::for_dir(&data_dir, database_url().await);
        config.admin_password = Some("admin-secret".into());
        config.admin_client_secret = Some("client-secret".into());
        TestPlatform::start_with(config).await
    }

    pub async fn start_with(config: ServerConfig) -> TestPlatform {
        let data_dir = config.data_dir.clone();
        let server = Server::start(config).await.expect("server starts");
        TestPlatform {
            url: server.url.clone(),
            admin_password: server.admin_password.clone(),
            admin_client_secret: server.admin_client_secret.clone(),
            server: Some(server),
            data_dir,
            http: reqwest::Client::new(),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("server stops cleanly");
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }

    /// A password-grant token for a user.
    pub async fn user_token(&self, username: &str, password: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.url))
            .basic_auth("cf", Some(""))
            .form(&[("grant_type", "password"), ("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "login of {username} failed");
        resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.user_token("admin", &self.admin_password.clone()).await
    }

    /// Sends a request; answers the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates an org as admin; answers its guid.
    pub async fn create_org(&self, token: &str, name: &str) -> String {
        let (s, v) = self.post("/v3/organizations", token, json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["guid"].as_str().unwrap().to_string()
    }

    pub async fn create_space(&self, token: &str, org: &str, name: &str) -> String {
        let (s, v) = self
            .post(
                "/v3/spaces",
                token,
                json!({"name": name, "relationships": {"organization": {"data": {"guid": org}}}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["guid"].as_str().unwrap().to_string()
    }

    /// Creates a UAA user (and its CC record); answers its guid.
    pub async fn create_user(&self, token: &str, username: &str, password: &str) -> String {
        let (s, v) = self
            .post("/Users", token, json!({"userName": username, "password": password, "emails": [{"value": format!("{username}@example.com")}]}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let guid = v["id"].as_str().unwrap().to_string();
        let (s, v) = self.post("/v3/users", token, json!({"guid": guid})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        guid
    }

    pub async fn give_role(&self, token: &str, user: &str, kind: &str, target: (&str, &str)) -> String {
        let (s, v) = self
            .post(
                "/v3/roles",
                token,
                json!({"type": kind, "relationships": {"user": {"data": {"guid": user}}, target.0: {"data": {"guid": target.1}}}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["guid"].as_str().unwrap().to_string()
    }

    /// `apply_manifest` of a YAML manifest: on a 202 the job's final state, else the answer.
    pub async fn apply_manifest(&self, token: &str, space: &str, yaml: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/v3/spaces/{space}/actions/apply_manifest", self.url))
            .bearer_auth(token)
            .header("content-type", "application/x-yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        match location {
            Some(job) if status == StatusCode::ACCEPTED => {
                let path = format!("/v3/{}", job.split_once("/v3/").unwrap().1);
                (status, self.wait_job(token, &path).await)
            }
            _ => (status, body),
        }
    }

    /// Waits for the job a 202 pointed at to finish; answers its final state.
    pub async fn wait_job(&self, token: &str, job_path: &str) -> Value {
        for _ in 0..200 {
            let (s, v) = self.get(job_path, token).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["state"] != "PROCESSING" {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("job {job_path} did not finish");
    }
}

/// Removes, when dropped, the named cgroup parents (their child cgroups first) in every
/// hierarchy: runtimes leave their parent behind, as a server does, and a test's must not
/// outlive it. Busy cgroups stay (rmdir refuses them).
pub struct CgroupParents(pub Vec<String>);

impl Drop for CgroupParents {
    fn drop(&mut self) {
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for name in &self.0 {
                let dir = hierarchy.path().join(name);
                for child in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_dir(child.path());
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}
