//! Kept list answers (apps, spaces, organizations) against a real platform: every change shows at once,
//! whoever makes it (an API request, or another process writing the same database), and
//! no caller is shown an answer kept for a caller who sees more.

mod common;

use common::TestPlatform;
use hearth::config::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `GET path` with optional extra headers; answers the status and the raw body.
async fn get_raw(p: &TestPlatform, path: &str, token: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = p.http.get(format!("{}{path}", p.url)).bearer_auth(token);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The app names a list answer shows, in order.
async fn names(p: &TestPlatform, path: &str, token: &str) -> Vec<String> {
    let (s, v) = p.get(path, token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["resources"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect()
}

async fn create_app(p: &TestPlatform, token: &str, space: &str, name: &str) -> String {
    let (s, v) =
        p.post("/v3/apps", token, json!({"name": name, "relationships": {"space": {"data": {"guid": space}}}})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["guid"].as_str().unwrap().to_string()
}

/// Sends a request that may answer with a job; waits for the job when it does.
async fn change(p: &TestPlatform, method: Method, path: &str, token: &str, body: Option<Value>) {
    let mut req = p.http.request(method, format!("{}{path}", p.url)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_string());
    assert!(status.is_success(), "{path}: {status} {}", resp.text().await.unwrap());
    if let (StatusCode::ACCEPTED, Some(job)) = (status, location) {
        let job = p.wait_job(token, &format!("/v3/{}", job.split_once("/v3/").unwrap().1)).await;
        assert_eq!(job["state"], "COMPLETE", "{job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_list_shows_every_change_at_once_and_only_what_each_caller_may_see() {
    let p = TestPlatform::start().await;
    let admin = p.admin_token().await;
    let org = p.create_org(&admin, "kept").await;
    let (s1, s2) = (p.create_space(&admin, &org, "one").await, p.create_space(&admin, &org, "two").await);
    let a1 = create_app(&p, &admin, &s1, "a1").await;
    create_app(&p, &admin, &s2, "a2").await;
    let dev = p.create_user(&admin, "kept-dev", "dev-password").await;
    p.give_role(&admin, &dev, "organization_user", ("organization", &org)).await;
    let role = p.give_role(&admin, &dev, "space_developer", ("space", &s1)).await;
    let dev_token = p.user_token("kept-dev", "dev-password").await;

    // The same request twice: the same bytes, and the same as a fresh answer.
    let list = "/v3/apps?order_by=name";
    let (_, first) = get_raw(&p, list, &admin, &[]).await;
    let (_, again) = get_raw(&p, list, &admin, &[]).await;
    let (_, fresh) = get_raw(&p, list, &admin, &[("cache-control", "no-cache")]).await;
    assert_eq!(first, again);
    assert_eq!(first, fresh);
    assert_eq!(names(&p, list, &admin).await, ["a1", "a2"]);

    // Another caller, the same path and query: only what that caller may see.
    assert_eq!(names(&p, list, &dev_token).await, ["a1"], "the admin's kept answer is not the developer's");

    // Another base URL: links name the host the client used.
    let host = p.url.trim_start_matches("http://").replace("127.0.0.1", "localhost");
    let (s, body) = get_raw(&p, list, &admin, &[("host", &host)]).await;
    assert_eq!(s, StatusCode::OK);
    let by_name: Value = serde_json::from_str(&body).unwrap();
    let link = by_name["resources"][0]["links"]["self"]["href"].as_str().unwrap();
    assert!(link.starts_with(&format!("http://{host}/v3/apps/")), "{link}");

    // Each kind of change shows on the next request.
    change(&p, Method::PATCH, &format!("/v3/apps/{a1}"), &admin, Some(json!({"name": "a1-renamed"}))).await;
    assert_eq!(names(&p, list, &admin).await, ["a1-renamed", "a2"], "a rename");
    assert_eq!(names(&p, list, &dev_token).await, ["a1-renamed"], "a rename, for the developer too");
    let labelled = "/v3/apps?label_selector=tier%3Dgold";
    assert!(names(&p, labelled, &admin).await.is_empty());
    change(
        &p,
        Method::PATCH,
        &format!("/v3/apps/{a1}"),
        &admin,
        Some(json!({"metadata": {"labels": {"tier": "gold"}}})),
    )
    .await;
    assert_eq!(names(&p, labelled, &admin).await, ["a1-renamed"], "a label");
    let (_, v) = p.get(list, &admin).await;
    assert_eq!(v["resources"][0]["metadata"]["labels"]["tier"], "gold");
    create_app(&p, &admin, &s1, "a0").await;
    assert_eq!(names(&p, list, &admin).await, ["a0", "a1-renamed", "a2"], "a new app");
    assert_eq!(names(&p, list, &dev_token).await, ["a0", "a1-renamed"]);

    // Included spaces and orgs, and the space and org lists, follow their own changes.
    let with_space = "/v3/apps?order_by=name&include=space,space.organization";
    let (_, v) = p.get(with_space, &admin).await;
    assert_eq!(v["included"]["organizations"][0]["name"], "kept");
    let spaces = "/v3/spaces?order_by=name";
    assert_eq!(names(&p, spaces, &admin).await, ["one", "two"]);
    assert_eq!(names(&p, spaces, &dev_token).await, ["one"], "the developer sees only their space");
    assert_eq!(names(&p, "/v3/organizations", &dev_token).await, ["kept"]);
    change(&p, Method::PATCH, &format!("/v3/organizations/{org}"), &admin, Some(json!({"name": "kept-renamed"}))).await;
    change(&p, Method::PATCH, &format!("/v3/spaces/{s1}"), &admin, Some(json!({"name": "one-renamed"}))).await;
    let (_, v) = p.get(with_space, &admin).await;
    assert_eq!(v["included"]["organizations"][0]["name"], "kept-renamed", "an included org's rename");
    let mut included: Vec<&str> =
        v["included"]["spaces"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    included.sort();
    assert_eq!(included, ["one-renamed", "two"], "an included space's rename");
    assert_eq!(names(&p, spaces, &admin).await, ["one-renamed", "two"]);
    assert_eq!(names(&p, "/v3/organizations", &dev_token).await, ["kept-renamed"]);

    // A role taken away: the developer's sight changed, so the kept answer is not theirs.
    change(&p, Method::DELETE, &format!("/v3/roles/{role}"), &admin, None).await;
    assert!(names(&p, list, &dev_token).await.is_empty(), "a developer without a role sees no apps");
    assert!(names(&p, spaces, &dev_token).await.is_empty(), "nor the space");
    assert_eq!(names(&p, "/v3/organizations", &dev_token).await, ["kept-renamed"], "the org role stays");

    // A deleted space takes its apps with it.
    change(&p, Method::DELETE, &format!("/v3/spaces/{s2}"), &admin, None).await;
    assert_eq!(names(&p, list, &admin).await, ["a0", "a1-renamed"], "a deleted space");
    assert_eq!(names(&p, spaces, &admin).await, ["one-renamed"]);
    let (_, v) = p.get(list, &admin).await;
    assert_eq!(v["pagination"]["total_results"], 2);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_written_by_another_process_shows_at_once() {
    let dir = std::env::temp_dir().join(format!("hearth-answers-{}-{}", std::process::id(), hearth_store::new_guid()));
    let mut config = ServerConfig::for_dir(&dir, common::database_url().await);
    config.admin_password = Some("admin-secret".into());
    let database_url = config.database_url.clone();
    let p = TestPlatform::start_with(config).await;
    let admin = p.admin_token().await;
    let org = p.create_org(&admin, "elsewhere").await;
    let space = p.create_space(&admin, &org, "s").await;
    let guid = create_app(&p, &admin, &space, "before").await;
    assert_eq!(names(&p, "/v3/apps", &admin).await, ["before"]);
    assert_eq!(names(&p, "/v3/apps", &admin).await, ["before"]);

    // Another process: its own connections to the same database, none of the server's.
    let other = hearth_store::Store::open(&database_url).await.unwrap();
    let mut conn = other.conn().await.unwrap();
    let mut app: hearth_store::App = hearth_store::get(&mut conn, &guid).await.unwrap().unwrap();
    drop(conn);
    app.name = "after".into();
    let mut tx = other.begin().await.unwrap();
    hearth_store::update(&mut tx, &app).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&p, "/v3/apps", &admin).await, ["after"]);

    // The kept answer is what is served while the number stands: a change made together
    // with moving the number back (which nothing but this test does) is not seen, except
    // by a request that asks for a fresh answer.
    app.name = "unseen".into();
    let mut tx = other.begin().await.unwrap();
    hearth_store::update(&mut tx, &app).await.unwrap();
    hearth_store::execute(&mut tx, "UPDATE data_generation SET n = n - 1 WHERE id = 1", vec![]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&p, "/v3/apps", &admin).await, ["after"], "the kept answer is served");
    let (_, fresh) = get_raw(&p, "/v3/apps", &admin, &[("cache-control", "no-cache")]).await;
    let fresh: Value = serde_json::from_str(&fresh).unwrap();
    assert_eq!(fresh["resources"][0]["name"], "unseen", "no-cache reads the database");

    let mut tx = other.begin().await.unwrap();
    assert!(hearth_store::delete::<hearth_store::App>(&mut tx, &guid).await.unwrap());
    tx.commit().await.unwrap();
    assert!(names(&p, "/v3/apps", &admin).await.is_empty());
    other.close().await;
    p.stop().await;
}
