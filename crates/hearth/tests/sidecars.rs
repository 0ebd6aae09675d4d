//! Sidecars through the API as the Cloud Controller answers them: from a manifest and
//! `POST /v3/apps/:guid/sidecars`, checked (names, process types, memory beside the
//! dependent processes), listed per app and per process, given back by the app's manifest,
//! and refused to those who may not change the space. (That a sidecar runs beside its
//! process is in the acceptance suite.)

mod common;

use common::TestPlatform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MANIFEST: &str = "applications:
- name: sided
  processes:
  - type: web
    memory: 256M
  - type: worker
    memory: 128M
  sidecars:
  - name: ticker
    process_types: [worker, web]
    command: sleep 1000
    memory: 64M
";

fn detail(body: &Value) -> &str {
    body["errors"][0]["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn sidecars_are_checked_listed_and_given_back_by_the_manifest_as_cc_does() {
    let p = TestPlatform::start().await;
    let admin = p.admin_token().await;
    let org = p.create_org(&admin, "acme").await;
    let space = p.create_space(&admin, &org, "dev").await;
    let (status, job) = p.apply_manifest(&admin, &space, MANIFEST).await;
    assert_eq!((status, job["state"].as_str()), (StatusCode::ACCEPTED, Some("COMPLETE")), "{job}");
    let (_, apps) = p.get(&format!("/v3/apps?names=sided&space_guids={space}"), &admin).await;
    let app = apps["resources"][0]["guid"].as_str().unwrap().to_string();
    let sidecars_of_app = format!("/v3/apps/{app}/sidecars");

    let (status, list) = p.get(&sidecars_of_app, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["pagination"]["total_results"], 1, "{list}");
    let ticker = &list["resources"][0];
    assert_eq!(ticker["name"], "ticker");
    assert_eq!(ticker["command"], "sleep 1000");
    assert_eq!(ticker["process_types"], json!(["web", "worker"]), "sorted, as CC answers");
    assert_eq!(ticker["memory_in_mb"], 64);
    assert_eq!(ticker["origin"], "user");
    assert_eq!(ticker["relationships"]["app"]["data"]["guid"], app.as_str());
    let ticker_path = format!("/v3/sidecars/{}", ticker["guid"].as_str().unwrap());

    // Refused, each with CC's words, and nothing is stored.
    let refused = [
        (
            json!({"name": "ticker", "command": "x", "process_types": ["web"]}),
            "Sidecar with name 'ticker' already exists for given app",
        ),
        (
            json!({"name": "big", "command": "x", "process_types": ["worker"], "memory_in_mb": 64}),
            "The memory allocation defined is too large to run with the dependent \"worker\" process",
        ),
        (
            json!({"name": "none", "command": "x", "process_types": []}),
            "Process types must have at least 1 process_type",
        ),
        (json!({"name": "x", "command": "x", "process_types": ["web"], "image": "y"}), "Unknown field(s): 'image'"),
        (json!({"command": "x", "process_types": ["web"]}), "Name can't be blank"),
        (
            json!({"name": "long", "command": "b".repeat(4097), "process_types": ["web"]}),
            "Command is too long (maximum is 4096 characters)",
        ),
        (
            json!({"name": "m", "command": "x", "process_types": ["web"], "memory_in_mb": 0}),
            "Memory in mb must be greater than 0",
        ),
    ];
    for (body, why) in refused {
        let (status, answer) = p.post(&sidecars_of_app, &admin, body.clone()).await;
        assert_eq!((status, detail(&answer)), (StatusCode::UNPROCESSABLE_ENTITY, why), "{body}");
    }
    let resp = p
        .http
        .post(format!("{}{sidecars_of_app}", p.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["errors"][0]["title"], "CF-MessageParseError");
    assert_eq!(p.get(&sidecars_of_app, &admin).await.1["pagination"]["total_results"], 1, "nothing stored");

    // A second sidecar for web only; per process, each process sees its own.
    let (status, logger) = p
        .post(
            &sidecars_of_app,
            &admin,
            json!({"name": "logger", "command": "tail -f /dev/null", "process_types": ["web"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{logger}");
    assert_eq!(logger["memory_in_mb"], Value::Null);
    let (_, processes) = p.get(&format!("/v3/apps/{app}/processes"), &admin).await;
    let process_of = |kind: &str| {
        processes["resources"].as_array().unwrap().iter().find(|p| p["type"] == kind).unwrap()["guid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let names = |list: &Value| -> Vec<String> {
        list["resources"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
    };
    let (_, web) = p.get(&format!("/v3/processes/{}/sidecars", process_of("web")), &admin).await;
    assert_eq!(names(&web), ["ticker", "logger"]);
    let (_, worker) = p.get(&format!("/v3/processes/{}/sidecars", process_of("worker")), &admin).await;
    assert_eq!(names(&worker), ["ticker"]);

    // Updates are partial; a rename onto a taken name is refused.
    let (status, updated) =
        p.call(Method::PATCH, &ticker_path, Some(&admin), Some(json!({"command": "sleep 2000"}))).await;
    assert_eq!(
        (status, updated["command"].as_str(), updated["name"].as_str()),
        (StatusCode::OK, Some("sleep 2000"), Some("ticker"))
    );
    let (status, answer) = p.call(Method::PATCH, &ticker_path, Some(&admin), Some(json!({"name": "logger"}))).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "Sidecar with name 'logger' already exists for given app")
    );

    // The app's manifest names both; applying it again changes nothing.
    let resp = p.http.get(format!("{}/v3/apps/{app}/manifest", p.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-yaml");
    let yaml = resp.text().await.unwrap();
    let manifest: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let described = &manifest["applications"][0];
    assert_eq!(described["name"], "sided", "{yaml}");
    assert_eq!(
        described["sidecars"],
        json!([
            {"name": "logger", "process_types": ["web"], "command": "tail -f /dev/null"},
            {"name": "ticker", "process_types": ["web", "worker"], "command": "sleep 2000", "memory": "64M"},
        ]),
        "{yaml}"
    );
    let kinds: Vec<&str> =
        described["processes"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["web", "worker"], "{yaml}");
    assert_eq!(described["processes"][1]["memory"], "128M", "{yaml}");
    let (status, job) = p.apply_manifest(&admin, &space, &yaml).await;
    assert_eq!((status, job["state"].as_str()), (StatusCode::ACCEPTED, Some("COMPLETE")), "{job}");
    assert_eq!(names(&p.get(&sidecars_of_app, &admin).await.1), ["ticker", "logger"]);

    // An auditor reads sidecars but changes none and gets no manifest (it holds the env);
    // someone outside the space does not see them at all.
    p.create_user(&admin, "audrey", "pw-audrey").await;
    let audrey = p.user_token("audrey", "pw-audrey").await;
    let (_, users) = p.get("/v3/users?usernames=audrey", &admin).await;
    let audrey_guid = users["resources"][0]["guid"].as_str().unwrap().to_string();
    p.give_role(&admin, &audrey_guid, "organization_user", ("organization", &org)).await;
    p.give_role(&admin, &audrey_guid, "space_auditor", ("space", &space)).await;
    assert_eq!(p.get(&sidecars_of_app, &audrey).await.0, StatusCode::OK);
    let (status, _) =
        p.post(&sidecars_of_app, &audrey, json!({"name": "a", "command": "x", "process_types": ["web"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(p.call(Method::DELETE, &ticker_path, Some(&audrey), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(p.get(&format!("/v3/apps/{app}/manifest"), &audrey).await.0, StatusCode::FORBIDDEN);
    p.create_user(&admin, "olga", "pw-olga").await;
    let olga = p.user_token("olga", "pw-olga").await;
    assert_eq!(p.get(&ticker_path, &olga).await.0, StatusCode::NOT_FOUND);
    assert_eq!(p.get(&sidecars_of_app, &olga).await.0, StatusCode::NOT_FOUND);

    // Deleting: 204, then gone; deleting the app takes the rest.
    assert_eq!(p.call(Method::DELETE, &ticker_path, Some(&admin), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(p.get(&ticker_path, &admin).await.0, StatusCode::NOT_FOUND);
    let logger_path = format!("/v3/sidecars/{}", logger["guid"].as_str().unwrap());
    let (status, _) = p.call(Method::DELETE, &format!("/v3/apps/{app}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut gone = false;
    for _ in 0..100 {
        if p.get(&logger_path, &admin).await.0 == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the app's sidecars go with it");
    p.stop().await;
}
