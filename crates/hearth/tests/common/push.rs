//! A client for end-to-end push tests: the CF API calls a push makes (as the cf CLI
//! makes them), the router reached by host name, log-cache reads, instance stats.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

pub struct Api {
    pub client: Client,
    pub url: String,
    pub token: String,
}

impl Api {
    pub async fn login(url: &str, username: &str, password: &str) -> Api {
        let client = Client::new();
        let response = client
            .post(format!("{url}/oauth/token"))
            .basic_auth("cf", Some(""))
            .form(&[("grant_type", "password"), ("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_string();
        Api { client, url: url.into(), token }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// Polls `path` until `done` says so (every 200 ms, at most `secs`).
    pub async fn until(&self, path: &str, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let body = self.ok(Method::GET, path, None).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: still {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn apply_manifest(&self, space: &str, yaml: &str) -> (StatusCode, Option<String>, Value) {
        let response = self
            .client
            .post(format!("{}/v3/spaces/{space}/actions/apply_manifest", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        (status, location, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Uploads a multipart body (`field` = `filename` holding `bytes`, plus `resources` if given).
    pub async fn upload(
        &self,
        path: &str,
        field: &str,
        filename: &str,
        bytes: &[u8],
        resources: Option<&str>,
    ) -> (StatusCode, Value) {
        let boundary = "hearth-push-test-4f1e";
        let mut body = Vec::new();
        if let Some(resources) = resources {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"resources\"\r\n\r\n{resources}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a bits package of `app` and uploads `files` (path, mode, content) as its zip;
    /// answers the package's guid once it is READY.
    pub async fn package_of<C: AsRef<[u8]>>(&self, app: &str, files: &[(&str, u32, C)]) -> String {
        let body = json!({"type": "bits", "relationships": {"app": {"data": {"guid": app}}}});
        let package = self.ok(Method::POST, "/v3/packages", Some(body)).await;
        let package = package["guid"].as_str().unwrap().to_string();
        let zip = super::uploads::zip_with_modes(files);
        let (status, body) =
            self.upload(&format!("/v3/packages/{package}/upload"), "bits", "package.zip", &zip, Some("[]")).await;
        assert_eq!((status.as_u16(), &body["state"]), (200, &json!("READY")), "{body}");
        package
    }

    /// Runs a build of `package` until it is no longer STAGING.
    pub async fn build(&self, package: &str) -> Value {
        let build = self.ok(Method::POST, "/v3/builds", Some(json!({"package": {"guid": package}}))).await;
        let path = format!("/v3/builds/{}", build["guid"].as_str().unwrap());
        self.until(&path, "staging", 120, |b| b["state"] != "STAGING").await
    }

    pub async fn stage(&self, app: &str, image: &str) -> Value {
        let package = self
            .ok(
                Method::POST,
                "/v3/packages",
                Some(json!({"type": "docker", "data": {"image": image},
                "relationships": {"app": {"data": {"guid": app}}}})),
            )
            .await;
        assert_eq!(package["state"], "READY", "{package}");
        let build = self.ok(Method::POST, "/v3/builds", Some(json!({"package": {"guid": package["guid"]}}))).await;
        assert_eq!(build["state"], "STAGING", "{build}");
        let path = format!("/v3/builds/{}", build["guid"].as_str().unwrap());
        self.until(&path, "staging", 60, |b| b["state"] != "STAGING").await
    }
}

/// GETs `/` on the router's address with `Host: host`; the status, body and router error.
pub async fn through_router(addr: &str, host: &str) -> (u16, String, Option<String>) {
    let response = Client::new().get(format!("http://{addr}/")).header("host", host).send().await.unwrap();
    let status = response.status().as_u16();
    let error = response.headers().get("x-cf-routererror").map(|v| v.to_str().unwrap().to_string());
    (status, response.text().await.unwrap(), error)
}

/// `SOURCE_TYPE:payload` of every log envelope a log-cache read returned.
pub fn log_lines(read: &Value) -> Vec<String> {
    use base64::Engine;
    read["envelopes"]["batch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let payload = base64::engine::general_purpose::STANDARD.decode(e["log"]["payload"].as_str()?).ok()?;
            Some(format!("{}:{}", e["tags"]["source_type"].as_str()?, String::from_utf8_lossy(&payload)))
        })
        .collect()
}

pub fn running(stats: &Value) -> usize {
    stats["resources"].as_array().unwrap().iter().filter(|i| i["state"] == "RUNNING").count()
}
