//! User-provided service instances and app credential bindings through the API, as the
//! Cloud Controller V3 has them (no containers): create, list with filters, update, bind,
//! unbind, delete; `VCAP_SERVICES` in the app's env for those who may read secrets; a
//! manifest's `services:` binding existing instances; and bad input answered with CC's
//! errors while nothing changes.

mod common;

use common::TestPlatform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "services-password";

struct World {
    p: TestPlatform,
    admin: String,
    dev: String,
    auditor: String,
    space: String,
    other_space: String,
}

impl World {
    async fn set_up() -> World {
        let p = TestPlatform::start().await;
        let admin = p.admin_token().await;
        let org = p.create_org(&admin, "svc-org").await;
        let space = p.create_space(&admin, &org, "dev").await;
        let other_space = p.create_space(&admin, &org, "other").await;
        let mut tokens = Vec::new();
        for (name, role) in [("svc-dev", "space_developer"), ("svc-auditor", "space_auditor")] {
            let user = p.create_user(&admin, name, PASSWORD).await;
            p.give_role(&admin, &user, "organization_user", ("organization", &org)).await;
            p.give_role(&admin, &user, role, ("space", &space)).await;
            p.give_role(&admin, &user, role, ("space", &other_space)).await;
            tokens.push(p.user_token(name, PASSWORD).await);
        }
        let auditor = tokens.pop().unwrap();
        let dev = tokens.pop().unwrap();
        World { p, admin, dev, auditor, space, other_space }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.p.call(method, path, Some(token), body).await
    }

    /// As the developer: a user-provided instance in `space`; answers it.
    async fn upsi(&self, space: &str, name: &str, credentials: Value) -> Value {
        let body = json!({"type": "user-provided", "name": name, "credentials": credentials,
                          "relationships": {"space": {"data": {"guid": space}}}});
        let (s, v) = self.call(Method::POST, "/v3/service_instances", &self.dev, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn app(&self, space: &str, name: &str) -> String {
        let body = json!({"name": name, "relationships": {"space": {"data": {"guid": space}}}});
        let (s, v) = self.call(Method::POST, "/v3/apps", &self.dev, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["guid"].as_str().unwrap().to_string()
    }

    async fn bind(&self, app: &str, si: &str, name: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({"type": "app", "relationships": {
            "app": {"data": {"guid": app}}, "service_instance": {"data": {"guid": si}}}});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        self.call(Method::POST, "/v3/service_credential_bindings", &self.dev, Some(body)).await
    }

    async fn total(&self, path: &str) -> u64 {
        let (s, v) = self.p.get(path, &self.admin).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["pagination"]["total_results"].as_u64().unwrap()
    }

    async fn vcap_services(&self, app: &str, token: &str) -> (StatusCode, Value) {
        let (s, v) = self.p.get(&format!("/v3/apps/{app}/env"), token).await;
        (s, v["system_env_json"]["VCAP_SERVICES"].clone())
    }

    async fn apply_manifest(&self, yaml: &str) -> Value {
        let (status, job) = self.p.apply_manifest(&self.dev, &self.space, yaml).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        job
    }
}

fn error(v: &Value) -> (&str, &str) {
    (v["errors"][0]["title"].as_str().unwrap_or(""), v["errors"][0]["detail"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_provided_instance_is_bound_seen_in_vcap_services_unbound_and_deleted() {
    let w = World::set_up().await;
    let creds = json!({"uri": "postgresql://app:s3cret@db.internal:5432/app", "username": "app"});
    let body = json!({"type": "user-provided", "name": "db", "credentials": creds, "tags": ["sql", "pg"],
                      "syslog_drain_url": "syslog-tls://logs.internal:6514",
                      "relationships": {"space": {"data": {"guid": w.space}}}});
    let (s, si) = w.call(Method::POST, "/v3/service_instances", &w.dev, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{si}");
    let si_guid = si["guid"].as_str().unwrap().to_string();
    assert_eq!((&si["type"], &si["name"], &si["tags"]), (&json!("user-provided"), &json!("db"), &json!(["sql", "pg"])));
    assert_eq!(si["syslog_drain_url"], "syslog-tls://logs.internal:6514");
    assert_eq!(si["route_service_url"], Value::Null);
    assert_eq!(si["last_operation"]["state"], "succeeded");
    assert_eq!(si["relationships"]["space"]["data"]["guid"], w.space.as_str());
    assert!(si["links"]["credentials"]["href"].as_str().unwrap().ends_with("/credentials"), "{si}");
    assert!(!si.to_string().contains("s3cret"), "credentials are not in the resource: {si}");

    // Lists and filters; the auditor sees the instance but not its credentials.
    for (query, n) in [
        (format!("names=db&space_guids={}", w.space), 1),
        ("type=user-provided".into(), 1),
        ("type=managed".into(), 0),
        (format!("space_guids={}", w.other_space), 0),
        ("names=nope".into(), 0),
    ] {
        let (s, v) = w.p.get(&format!("/v3/service_instances?{query}"), &w.auditor).await;
        assert_eq!((s, v["pagination"]["total_results"].as_u64()), (StatusCode::OK, Some(n)), "{query}: {v}");
    }
    let (s, v) = w.p.get(&format!("/v3/service_instances/{si_guid}/credentials"), &w.dev).await;
    assert_eq!((s, &v), (StatusCode::OK, &creds));
    let (s, v) = w.p.get(&format!("/v3/service_instances/{si_guid}/credentials"), &w.auditor).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Bound under a binding name: VCAP_SERVICES as CC renders it, and DATABASE_URL's source.
    let app = w.app(&w.space, "web").await;
    let (s, vcap) = w.vcap_services(&app, &w.dev).await;
    assert_eq!((s, vcap), (StatusCode::OK, json!({})));
    let (s, binding) = w.bind(&app, &si_guid, Some("primary")).await;
    assert_eq!(s, StatusCode::CREATED, "{binding}");
    let binding_guid = binding["guid"].as_str().unwrap().to_string();
    assert_eq!((&binding["type"], &binding["name"]), (&json!("app"), &json!("primary")));
    assert_eq!(binding["relationships"]["app"]["data"]["guid"], app.as_str());
    assert_eq!(binding["relationships"]["service_instance"]["data"]["guid"], si_guid.as_str());
    let (_, vcap) = w.vcap_services(&app, &w.dev).await;
    assert_eq!(
        vcap,
        json!({"user-provided": [{
            "label": "user-provided", "name": "primary", "tags": ["sql", "pg"],
            "instance_guid": si_guid, "instance_name": "db",
            "binding_guid": binding_guid, "binding_name": "primary",
            "credentials": creds, "syslog_drain_url": "syslog-tls://logs.internal:6514", "volume_mounts": [],
        }]})
    );
    let (s, v) = w.vcap_services(&app, &w.auditor).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an auditor sees no VCAP_SERVICES: {v}");
    let (s, v) = w.p.get(&format!("/v3/service_credential_bindings/{binding_guid}/details"), &w.dev).await;
    assert_eq!((s, &v["credentials"]), (StatusCode::OK, &creds), "{v}");
    let (s, _) = w.p.get(&format!("/v3/service_credential_bindings/{binding_guid}/details"), &w.auditor).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (query, n) in [
        (format!("app_guids={app}"), 1),
        (format!("service_instance_guids={si_guid}"), 1),
        ("service_instance_names=db&app_names=web".into(), 1),
        (format!("app_guids={si_guid}"), 0),
    ] {
        let (s, v) = w.p.get(&format!("/v3/service_credential_bindings?{query}"), &w.auditor).await;
        assert_eq!((s, v["pagination"]["total_results"].as_u64()), (StatusCode::OK, Some(n)), "{query}: {v}");
    }
    let (_, v) = w.p.get(&format!("/v3/service_credential_bindings?app_guids={app}&include=app"), &w.dev).await;
    assert_eq!(v["included"]["apps"][0]["name"], "web", "{v}");

    // New credentials show in the env; the audit trail names no secret.
    let new_creds = json!({"uri": "mysql://app:n3w@db2.internal/app"});
    let (s, v) = w
        .call(
            Method::PATCH,
            &format!("/v3/service_instances/{si_guid}"),
            &w.dev,
            Some(json!({"credentials": new_creds})),
        )
        .await;
    assert_eq!((s, &v["last_operation"]["type"]), (StatusCode::OK, &json!("update")), "{v}");
    let (_, vcap) = w.vcap_services(&app, &w.dev).await;
    assert_eq!(vcap["user-provided"][0]["credentials"], new_creds);
    let (_, events) = w.p.get("/v3/audit_events?per_page=200", &w.admin).await;
    let types: Vec<&str> = events["resources"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    for t in [
        "audit.user_provided_service_instance.create",
        "audit.user_provided_service_instance.update",
        "audit.service_binding.create",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    assert!(!events.to_string().contains("s3cret") && !events.to_string().contains("n3w"), "no secret in events");

    // Bound: CC's 422, and the instance stays.
    let (s, v) = w.call(Method::DELETE, &format!("/v3/service_instances/{si_guid}"), &w.dev, None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["code"], 10006, "{v}");
    assert!(error(&v).1.contains("service_bindings"), "{v}");
    assert_eq!(w.total("/v3/service_instances").await, 1);

    // Unbound: the env is empty again and the instance can go.
    let (s, _) = w.call(Method::DELETE, &format!("/v3/service_credential_bindings/{binding_guid}"), &w.dev, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = w.p.get(&format!("/v3/service_credential_bindings/{binding_guid}"), &w.dev).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(w.vcap_services(&app, &w.dev).await.1, json!({}));
    let (s, _) = w.call(Method::DELETE, &format!("/v3/service_instances/{si_guid}"), &w.dev, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = w.p.get(&format!("/v3/service_instances/{si_guid}"), &w.dev).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // purge=true deletes a bound instance with its bindings; an app's delete takes its bindings.
    let cache = w.upsi(&w.space, "cache", json!({})).await;
    let cache_guid = cache["guid"].as_str().unwrap();
    let (s, _) = w.bind(&app, cache_guid, None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = w.call(Method::DELETE, &format!("/v3/service_instances/{cache_guid}?purge=true"), &w.dev, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(w.total("/v3/service_credential_bindings").await, 0);
    let queue = w.upsi(&w.space, "queue", json!({})).await;
    let (s, _) = w.bind(&app, queue["guid"].as_str().unwrap(), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = w.call(Method::DELETE, &format!("/v3/apps/{app}"), &w.dev, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    for _ in 0..100 {
        if w.total("/v3/apps").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(w.total("/v3/service_credential_bindings").await, 0, "the app's bindings went with it");
    w.p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_cc_errors_and_changes_nothing() {
    let w = World::set_up().await;
    let db = w.upsi(&w.space, "db", json!({"uri": "postgres://h/d"})).await;
    let db_guid = db["guid"].as_str().unwrap().to_string();
    let elsewhere = w.upsi(&w.other_space, "db", json!({})).await;
    let app = w.app(&w.space, "web").await;
    let (s, binding) = w.bind(&app, &db_guid, None).await;
    assert_eq!(s, StatusCode::CREATED, "{binding}");
    let events = w.total("/v3/audit_events").await;
    let in_space = |extra: Value| {
        let mut body =
            json!({"type": "user-provided", "name": "x", "relationships": {"space": {"data": {"guid": w.space}}}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    // Malformed JSON is a parse error.
    let resp =
        w.p.http
            .post(format!("{}/v3/service_instances", w.p.url))
            .bearer_auth(&w.dev)
            .header("content-type", "application/json")
            .body(r#"{"type":"user-provided","name":"x","credentials":{"#)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(error(&v).0, "CF-MessageParseError", "{v}");

    for (body, title, detail) in [
        (in_space(json!({"credentials": "user=x"})), "CF-UnprocessableEntity", "Credentials must be an object"),
        (in_space(json!({"colour": "blue"})), "CF-UnprocessableEntity", "Unknown field(s): 'colour'"),
        (in_space(json!({"tags": "sql"})), "CF-UnprocessableEntity", "Tags must be a list of strings"),
        (
            in_space(json!({"route_service_url": "http://rs"})),
            "CF-UnprocessableEntity",
            "Route service url must be https",
        ),
        (
            in_space(json!({"syslog_drain_url": "not a url"})),
            "CF-UnprocessableEntity",
            "Syslog drain url must be a valid URI",
        ),
        (in_space(json!({"type": "managed"})), "CF-UnprocessableEntity", "no service brokers are available"),
        (in_space(json!({"type": "shared"})), "CF-UnprocessableEntity", "Type must be one of"),
        (in_space(json!({"name": "db"})), "CF-UnprocessableEntity", "The service instance name is taken: db"),
        (
            in_space(json!({"relationships": {"space": {"data": {"guid": "no-such-space"}}}})),
            "CF-UnprocessableEntity",
            "Invalid space",
        ),
    ] {
        let (s, v) = w.call(Method::POST, "/v3/service_instances", &w.dev, Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(error(&v).0, title, "{body}: {v}");
        assert!(error(&v).1.contains(detail), "{body}: {detail} in {v}");
    }
    let elsewhere_path = format!("/v3/service_instances/{}", elsewhere["guid"].as_str().unwrap());
    let patch = |body: Value| w.call(Method::PATCH, &elsewhere_path, &w.dev, Some(body));
    let (s, v) = patch(json!({"credentials": [1]})).await;
    assert_eq!((s, error(&v).1), (StatusCode::UNPROCESSABLE_ENTITY, "Credentials must be an object"));
    let (s, v) = patch(json!({"type": "managed"})).await;
    assert_eq!((s, error(&v).1), (StatusCode::UNPROCESSABLE_ENTITY, "Unknown field(s): 'type'"));
    let other_cache = w.upsi(&w.other_space, "cache", json!({})).await;
    let (s, v) = patch(json!({"name": "cache"})).await;
    assert_eq!((s, error(&v).1), (StatusCode::UNPROCESSABLE_ENTITY, "The service instance name is taken: cache"));
    let events = events + 1; // other_cache's creation

    // Bindings: twice, across spaces, with broker parameters, of an unknown instance, as a key.
    let rel = |si: &str| json!({"app": {"data": {"guid": app}}, "service_instance": {"data": {"guid": si}}});
    let elsewhere_guid = elsewhere["guid"].as_str().unwrap();
    for (body, detail) in [
        (json!({"type": "app", "relationships": rel(&db_guid)}), "The app is already bound to the service instance"),
        (
            json!({"type": "app", "relationships": rel(elsewhere_guid)}),
            "The service instance and the app are in different spaces",
        ),
        (
            json!({"type": "app", "relationships": rel(other_cache["guid"].as_str().unwrap()), "parameters": {"a": 1}}),
            "Binding parameters are not supported for user-provided service instances",
        ),
        (json!({"type": "app", "relationships": rel("no-such-instance")}), "The service instance could not be found"),
        (json!({"type": "key", "relationships": rel(&db_guid)}), "type 'key' are not supported"),
        (json!({"type": "app", "relationships": rel(&db_guid), "extra": true}), "Unknown field(s): 'extra'"),
    ] {
        let (s, v) = w.call(Method::POST, "/v3/service_credential_bindings", &w.dev, Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(error(&v).1.contains(detail), "{body}: {detail} in {v}");
    }
    // The auditor may look but not bind, unbind or delete.
    let body = json!({"type": "app", "relationships": rel(other_cache["guid"].as_str().unwrap())});
    let (s, _) = w.call(Method::POST, "/v3/service_credential_bindings", &w.auditor, Some(body)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the auditor sees both, but may not bind");
    let binding_path = format!("/v3/service_credential_bindings/{}", binding["guid"].as_str().unwrap());
    let (s, _) = w.call(Method::DELETE, &binding_path, &w.auditor, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = w.call(Method::DELETE, &format!("/v3/service_instances/{db_guid}"), &w.auditor, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = w.call(Method::DELETE, &format!("/v3/service_instances/{db_guid}?purge=maybe"), &w.dev, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Nothing changed.
    assert_eq!(w.total("/v3/service_instances").await, 3);
    assert_eq!(w.total("/v3/service_credential_bindings").await, 1);
    assert_eq!(w.total("/v3/audit_events").await, events);
    let (_, si) = w.p.get(&format!("/v3/service_instances/{elsewhere_guid}"), &w.dev).await;
    assert_eq!(si["name"], "db");
    let (_, creds) = w.p.get(&format!("/v3/service_instances/{elsewhere_guid}/credentials"), &w.dev).await;
    assert_eq!(creds, json!({}));
    w.p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_binds_the_services_it_names() {
    let w = World::set_up().await;
    w.upsi(&w.space, "db", json!({"uri": "postgres://u:p@h/d"})).await;
    w.upsi(&w.space, "cache", json!({"host": "cache.internal"})).await;
    let manifest =
        "applications:\n- name: web\n  services:\n  - db\n  - name: cache\n    binding_name: primary-cache\n";
    let job = w.apply_manifest(manifest).await;
    assert_eq!(job["state"], "COMPLETE", "{job}");
    let (_, apps) = w.p.get("/v3/apps?names=web", &w.dev).await;
    let app = apps["resources"][0]["guid"].as_str().unwrap().to_string();
    let (_, vcap) = w.vcap_services(&app, &w.dev).await;
    let names: Vec<&str> =
        vcap["user-provided"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db", "primary-cache"], "{vcap}");
    // The app's manifest names them as they were bound (the auditor may not read it: it holds env).
    let resp = w.p.http.get(format!("{}/v3/apps/{app}/manifest", w.p.url)).bearer_auth(&w.dev).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-yaml");
    let generated = resp.text().await.unwrap();
    assert!(generated.starts_with("---\napplications:\n- name: web\n"), "{generated}");
    for line in ["  services:\n  - db\n  - ", "binding_name: primary-cache\n", "name: cache\n"] {
        assert!(generated.contains(line), "{line:?} in {generated}");
    }
    let (s, _) = w.p.get(&format!("/v3/apps/{app}/manifest"), &w.auditor).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Applying it again binds nothing twice.
    assert_eq!(w.apply_manifest(manifest).await["state"], "COMPLETE");
    assert_eq!(w.total(&format!("/v3/service_credential_bindings?app_guids={app}")).await, 2);

    // A missing instance fails the job with CC's words; the rest of that app's manifest is not applied.
    let bindings = w.total("/v3/service_credential_bindings").await;
    let job = w.apply_manifest("applications:\n- name: web\n  env: {COLOUR: blue}\n  services: [db, nope]\n").await;
    assert_eq!(job["state"], "FAILED", "{job}");
    assert_eq!(job["errors"][0]["detail"], "Service instance 'nope' not found", "{job}");
    assert_eq!(job["errors"][0]["title"], "CF-ResourceNotFound", "{job}");
    let (_, env) = w.p.get(&format!("/v3/apps/{app}/environment_variables"), &w.dev).await;
    assert_eq!(env["var"].get("COLOUR"), None, "{env}");
    let job =
        w.apply_manifest("applications:\n- name: web\n  services: [{name: cache, parameters: {plan: big}}]\n").await;
    assert_eq!(job["state"], "FAILED", "{job}");
    assert!(job["errors"][0]["detail"].as_str().unwrap().contains("Binding parameters are not supported"), "{job}");
    assert_eq!(w.total("/v3/service_credential_bindings").await, bindings);

    // A manifest that is not a list of names or mappings is refused before anything is done.
    let resp =
        w.p.http
            .post(format!("{}/v3/spaces/{}/actions/apply_manifest", w.p.url, w.space))
            .bearer_auth(&w.dev)
            .header("content-type", "application/x-yaml")
            .body("applications:\n- name: web2\n  services: db\n")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(w.total("/v3/apps?names=web2").await, 0);
    w.p.stop().await;
}
