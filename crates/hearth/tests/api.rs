//! The Cloud Controller V3 API through real HTTP: shapes, lists, jobs, audit events,
//! bad input, and persistence across restarts.

mod common;

use common::TestPlatform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn error_code(v: &Value) -> (i64, String) {
    (v["errors"][0]["code"].as_i64().unwrap_or(-1), v["errors"][0]["title"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn root_documents_point_at_this_address() {
    let p = TestPlatform::start().await;
    let (s, root) = p.call(Method::GET, "/", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let host = p.url.clone();
    assert_eq!(root["links"]["cloud_controller_v3"]["href"], format!("{host}/v3"));
    assert!(root["links"]["cloud_controller_v3"]["meta"]["version"].as_str().unwrap().starts_with("3."));
    for key in ["login", "uaa", "self"] {
        assert_eq!(root["links"][key]["href"], host, "{key}");
    }
    for key in ["logging", "log_cache", "log_stream", "network_policy_v1", "app_ssh"] {
        assert!(root["links"].get(key).is_some(), "root lacks {key}");
    }
    let (_, v3) = p.call(Method::GET, "/v3", None, None).await;
    for key in [
        "apps",
        "organizations",
        "spaces",
        "roles",
        "users",
        "domains",
        "routes",
        "processes",
        "stacks",
        "feature_flags",
        "organization_quotas",
        "audit_events",
        "packages",
        "builds",
        "droplets",
        "deployments",
    ] {
        assert_eq!(v3["links"][key]["href"], format!("{host}/v3/{key}"), "{key}");
    }
    let (_, login) = p.call(Method::GET, "/login", None, None).await;
    assert_eq!(login["links"]["uaa"], host);
    assert_eq!(login["prompts"]["password"], json!(["password", "Password"]));
    let (s, info) = p.call(Method::GET, "/v3/info", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(info["links"]["self"]["href"].as_str().unwrap().ends_with("/v3/info"));
    let (s, v) = p.call(Method::GET, "/v3/no_such_thing", None, None).await;
    assert_eq!((s, error_code(&v).0), (StatusCode::NOT_FOUND, 10000));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_carry_uaa_claims_and_bad_credentials_are_refused_as_uaa_does() {
    let p = TestPlatform::start().await;
    let token = p.admin_token().await;
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for claim in [
        "jti",
        "sub",
        "user_id",
        "user_name",
        "email",
        "origin",
        "client_id",
        "cid",
        "azp",
        "grant_type",
        "scope",
        "aud",
        "iss",
        "zid",
        "iat",
        "exp",
        "rev_sig",
    ] {
        assert!(claims.get(claim).is_some(), "token lacks {claim}: {claims}");
    }
    assert_eq!(claims["user_name"], "admin");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 12 * 3600);
    assert_eq!(claims["iss"], format!("{}/oauth/token", p.url));
    let form = |user: &str, pw: &str| {
        vec![
            ("grant_type".to_string(), "password".to_string()),
            ("username".into(), user.into()),
            ("password".into(), pw.into()),
        ]
    };
    let post = |client: (&str, &str), form: Vec<(String, String)>| {
        p.http.post(format!("{}/oauth/token", p.url)).basic_auth(client.0, Some(client.1)).form(&form).send()
    };
    let r = post(("cf", ""), form("admin", "wrong")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = post(("nobody", "x"), form("admin", "admin-secret")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(("admin", "client-secret"), form("admin", "admin-secret")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_client",
        "the admin client may not use the password grant"
    );
    let cc = vec![("grant_type".to_string(), "client_credentials".to_string())];
    let r = post(("admin", "client-secret"), cc.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    assert!(body["scope"].as_str().unwrap().contains("cloud_controller.admin"));
    let r = p
        .http
        .post(format!("{}/oauth/token", p.url))
        .form(&[("grant_type", "client_credentials"), ("client_id", "admin"), ("client_secret", "client-secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "client authentication by form fields works too");
    let r = post(("cf", ""), vec![("grant_type".into(), "implicit_magic".into())]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_rotate_and_a_password_change_revokes_them() {
    let p = TestPlatform::start().await;
    let admin = p.admin_token().await;
    let user = p.create_user(&admin, "rita", "pw-1").await;
    let login = p
        .http
        .post(format!("{}/oauth/token", p.url))
        .basic_auth("cf", Some(""))
        .form(&[("grant_type", "password"), ("username", "rita"), ("password", "pw-1")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let refresh = |rt: String| {
        p.http
            .post(format!("{}/oauth/token", p.url))
            .basic_auth("cf", Some(""))
            .form(&[("grant_type", "refresh_token".to_string()), ("refresh_token", rt)])
            .send()
    };
    let r = refresh(login["refresh_token"].as_str().unwrap().to_string()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let renewed: Value = r.json().await.unwrap();
    assert!(renewed["refresh_token"].is_string(), "a refresh answers a new refresh token");
    let (s, _) = p.get("/v3/organizations", renewed["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let r = refresh(login["refresh_token"].as_str().unwrap().to_string()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a used refresh token is spent");
    let r = refresh(renewed["access_token"].as_str().unwrap().to_string()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "an access token is no refresh token");
    let user_token = renewed["access_token"].as_str().unwrap();
    let (s, _) = p
        .call(
            Method::PUT,
            &format!("/Users/{user}/password"),
            Some(user_token),
            Some(json!({"oldPassword": "pw-1", "password": "pw-2"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = refresh(renewed["refresh_token"].as_str().unwrap().to_string()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a new password revokes refresh tokens");
    p.user_token("rita", "pw-2").await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_failed_logins_lock_the_account() {
    let p = TestPlatform::start().await;
    let admin = p.admin_token().await;
    p.create_user(&admin, "mallory", "right").await;
    let attempt = |pw: &'static str| {
        p.http
            .post(format!("{}/oauth/token", p.url))
            .basic_auth("cf", Some(""))
            .form(&[("grant_type", "password"), ("username", "mallory"), ("password", pw)])
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let r = attempt("right").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("locked"), "{body}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_without_logging_anyone_out() {
    let p = TestPlatform::start().await;
    let old = p.admin_token().await;
    let auth = p.server.as_ref().unwrap().auth.clone();
    let old_kid = auth.primary_jwk().await["kid"].as_str().unwrap().to_string();
    let new_kid = auth.rotate_key().await.unwrap();
    let (_, keys) = p.call(Method::GET, "/token_keys", None, None).await;
    let kids: Vec<&str> = keys["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()), "{kids:?}");
    let (_, key) = p.call(Method::GET, "/token_key", None, None).await;
    assert_eq!(key["kid"], new_kid.as_str());
    let (s, _) = p.get("/v3/organizations", &old).await;
    assert_eq!(s, StatusCode::OK, "tokens signed by the old key still verify");
    let fresh = p.admin_token().await;
    assert!(auth.remove_key(&old_kid).await.unwrap());
    let (s, v) = p.get("/v3/organizations", &old).await;
    assert_eq!((s, error_code(&v).0), (StatusCode::UNAUTHORIZED, 1000), "a removed key's tokens stop working");
    let (s, _) = p.get("/v3/organizations", &fresh).await;
    assert_eq!(s, StatusCode::OK);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_forged_and_expired_tokens_get_401() {
    let dir = std::env::temp_dir().join(format!("hearth-expiry-{}", std::process::id()));
    let mut config = hearth::config::ServerConfig::for_dir(&dir, common::database_url().await);
    config.admin_password = Some("admin-secret".into());
    config.access_token_validity_secs = 2;
    let p = TestPlatform::start_with(config).await;
    let (s, v) = p.call(Method::GET, "/v3/organizations", None, None).await;
    assert_eq!((s, error_code(&v)), (StatusCode::UNAUTHORIZED, (10002, "CF-NotAuthenticated".into())));
    let token = p.admin_token().await;
    // Used while valid, so the server has it verified in memory when it expires.
    let (s, _) = p.get("/v3/organizations", &token).await;
    assert_eq!(s, StatusCode::OK, "a fresh token works");
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    claims["scope"] = json!(["cloud_controller.admin"]);
    claims["user_name"] = json!("someone-else");
    parts[1] = engine.encode(claims.to_string());
    let forged = parts.join(".");
    for bad in [forged.as_str(), "not-a-jwt", "eyJhbGciOiJub25lIn0.e30."] {
        let (s, v) = p.get("/v3/organizations", bad).await;
        assert_eq!((s, error_code(&v)), (StatusCode::UNAUTHORIZED, (1000, "CF-InvalidAuthToken".into())), "{bad}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (s, v) = p.get("/v3/organizations", &token).await;
    assert_eq!((s, error_code(&v).0), (StatusCode::UNAUTHORIZED, 1000), "expired");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_cf_errors_and_stores_nothing() {
    let p = TestPlatform::start().await;
    let t = p.admin_token().await;
    let count = || async { p.get("/v3/organizations", &t).await.1["pagination"]["total_results"].as_u64().unwrap() };
    let before = count().await;
    let raw = |body: &'static str| {
        p.http
            .post(format!("{}/v3/organizations", p.url))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{\"name\": ").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r.json().await.unwrap()), (1001, "CF-MessageParseError".into()));
    let (s, v) = p.post("/v3/organizations", &t, json!({"name": "x", "colour": "blue"})).await;
    assert_eq!((s, error_code(&v).0), (StatusCode::UNPROCESSABLE_ENTITY, 10008));
    assert!(v["errors"][0]["detail"].as_str().unwrap().contains("'colour'"), "{v}");
    let (s, v) = p.post("/v3/organizations", &t, json!({"name": 42})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["detail"], "Name must be a string");
    let (s, _) = p.post("/v3/organizations", &t, json!({"name": "n".repeat(256)})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) =
        p.post("/v3/organizations", &t, json!({"name": "ok", "metadata": {"labels": {"bad key!": "v"}}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = p
        .http
        .post(format!("{}/v3/organizations", p.url))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&r.json().await.unwrap()).1, "CF-RequestEntityTooLarge");
    assert_eq!(count().await, before, "nothing was stored");
    p.create_org(&t, "dup").await;
    let (s, v) = p.post("/v3/organizations", &t, json!({"name": "dup"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["detail"], "Organization 'dup' already exists.");
    let (s, v) = p.get("/v3/organizations?per_page=0", &t).await;
    assert_eq!((s, error_code(&v).0), (StatusCode::BAD_REQUEST, 10005));
    let (s, v) = p.get("/v3/organizations?colour=blue", &t).await;
    assert_eq!((s, error_code(&v).0), (StatusCode::BAD_REQUEST, 10005));
    let (s, v) = p.get("/v3/organizations/no-such-guid", &t).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, (10010, "CF-ResourceNotFound".into())));
    assert_eq!(v["errors"][0]["detail"], "Organization not found");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_role_request_changes_nothing() {
    let p = TestPlatform::start().await;
    let t = p.admin_token().await;
    let org = p.create_org(&t, "tx-org").await;
    let space = p.create_space(&t, &org, "tx-space").await;
    let (s, v) = p.post("/Users", &t, json!({"userName": "nobody-yet", "password": "pw"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let uaa_guid = v["id"].as_str().unwrap().to_string();
    let (s, v) = p
        .post("/v3/roles", &t, json!({"type": "space_developer", "relationships": {"user": {"data": {"guid": uaa_guid}}, "space": {"data": {"guid": space}}}}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["errors"][0]["detail"].as_str().unwrap().contains("do not have a role in that space's organization"));
    let (s, _) = p.get(&format!("/v3/users/{uaa_guid}"), &t).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the user record made during the failed request was rolled back");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_page_filter_order_select_labels_and_include() {
    let p = TestPlatform::start().await;
    let t = p.admin_token().await;
    let mut orgs = Vec::new();
    for i in 0..12 {
        let (s, v) = p.post("/v3/organizations", &t, json!({"name": format!("page-{i:02}"), "metadata": {"labels": {"tier": if i < 4 { "gold" } else { "plain" }}}})).await;
        assert_eq!(s, StatusCode::CREATED);
        orgs.push(v["guid"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut next = Some(format!("{}/v3/organizations?per_page=5&order_by=-name", p.url));
    while let Some(url) = next {
        let v: Value = p.http.get(&url).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["pagination"]["total_results"], 12);
        assert_eq!(v["pagination"]["total_pages"], 3);
        seen.extend(v["resources"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_string()));
        next = v["pagination"]["next"]["href"].as_str().map(str::to_string);
    }
    let mut expected: Vec<String> = (0..12).map(|i| format!("page-{i:02}")).rev().collect();
    assert_eq!(seen, expected);
    expected.reverse();
    let (_, v) = p.get("/v3/organizations?label_selector=tier%3Dgold", &t).await;
    assert_eq!(v["pagination"]["total_results"], 4);
    let (_, v) = p.get("/v3/organizations?label_selector=tier!%3Dgold,tier", &t).await;
    assert_eq!(v["pagination"]["total_results"], 8);
    let (_, v) = p.get("/v3/organizations?names=page-01,page-02", &t).await;
    assert_eq!(v["pagination"]["total_results"], 2);
    let space = p.create_space(&t, &orgs[0], "with-org").await;
    let (_, v) = p.get(&format!("/v3/spaces?guids={space}&include=organization"), &t).await;
    assert_eq!(v["included"]["organizations"][0]["guid"], orgs[0].as_str());
    let (_, v) = p.get(&format!("/v3/spaces/{space}?include=organization"), &t).await;
    assert_eq!(v["included"]["organizations"][0]["name"], "page-00");
    assert_eq!(v["relationships"]["organization"]["data"]["guid"], orgs[0].as_str());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_are_jobs_that_take_children_along_and_leave_audit_events() {
    let p = TestPlatform::start().await;
    let t = p.admin_token().await;
    let org = p.create_org(&t, "doomed").await;
    let space = p.create_space(&t, &org, "inside").await;
    let (s, app) =
        p.post("/v3/apps", &t, json!({"name": "app1", "relationships": {"space": {"data": {"guid": space}}}})).await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    let r = p.http.delete(format!("{}/v3/organizations/{org}", p.url)).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/v3/jobs/", p.url)));
    let job = p.wait_job(&t, location.strip_prefix(&p.url).unwrap()).await;
    assert_eq!(job["state"], "COMPLETE");
    assert_eq!(job["operation"], "organization.delete");
    for path in [
        format!("/v3/organizations/{org}"),
        format!("/v3/spaces/{space}"),
        format!("/v3/apps/{}", app["guid"].as_str().unwrap()),
    ] {
        assert_eq!(p.get(&path, &t).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, events) = p.get(&format!("/v3/audit_events?target_guids={org}"), &t).await;
    let types: Vec<&str> =
        events["resources"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["audit.organization.create", "audit.organization.delete-request"]);
    assert_eq!(events["resources"][0]["actor"]["name"], "admin");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_processes_routes_and_domains_keep_cf_shapes() {
    let p = TestPlatform::start().await;
    let t = p.admin_token().await;
    let org = p.create_org(&t, "shapes").await;
    let space = p.create_space(&t, &org, "s").await;
    let (s, app) = p
        .post("/v3/apps", &t, json!({"name": "web", "relationships": {"space": {"data": {"guid": space}}}, "environment_variables": {"A": "1"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    assert_eq!(app["state"], "STOPPED");
    assert_eq!(app["lifecycle"]["data"]["stack"], "cflinuxfs4");
    let guid = app["guid"].as_str().unwrap();
    let (_, procs) = p.get(&format!("/v3/apps/{guid}/processes"), &t).await;
    assert_eq!(procs["resources"][0]["type"], "web");
    assert_eq!(procs["resources"][0]["health_check"]["type"], "port");
    let (s, scaled) = p
        .post(&format!("/v3/apps/{guid}/processes/web/actions/scale"), &t, json!({"instances": 3, "memory_in_mb": 256}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{scaled}");
    assert_eq!((scaled["instances"].as_i64(), scaled["memory_in_mb"].as_i64()), (Some(3), Some(256)));
    let (s, v) = p
        .post(
            &format!("/v3/apps/{guid}/processes/web/actions/scale"),
            &t,
            json!({"instances": 100, "memory_in_mb": 1024}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "the default org quota caps memory at 10 GB: {v}");
    let (s, env) = p
        .call(
            Method::PATCH,
            &format!("/v3/apps/{guid}/environment_variables"),
            Some(&t),
            Some(json!({"var": {"B": "2", "A": null}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(env["var"], json!({"B": "2"}));
    let (s, _) = p
        .call(
            Method::PATCH,
            &format!("/v3/apps/{guid}/environment_variables"),
            Some(&t),
            Some(json!({"var": {"VCAP_X": "no"}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, env) = p.get(&format!("/v3/apps/{guid}/env"), &t).await;
    assert_eq!(env["application_env_json"]["VCAP_APPLICATION"]["space_name"], "s");
    let (_, domains) = p.get("/v3/domains?names=apps.localhost", &t).await;
    let domain = domains["resources"][0]["guid"].as_str().unwrap().to_string();
    let route_body = json!({"host": "web", "path": "/api", "relationships": {"space": {"data": {"guid": space}}, "domain": {"data": {"guid": domain}}}});
    let (s, route) = p.post("/v3/routes", &t, route_body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{route}");
    assert_eq!(route["url"], "web.apps.localhost/api");
    let (s, v) = p.post("/v3/routes", &t, route_body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["errors"][0]["detail"].as_str().unwrap().contains("Route already exists"));
    let (_, r) = p.get(&format!("/v3/domains/{domain}/route_reservations?host=web&path=/api"), &t).await;
    assert_eq!(r["matching_route"], true);
    let (s, private) = p
        .post(
            "/v3/domains",
            &t,
            json!({"name": "shapes.example.com", "relationships": {"organization": {"data": {"guid": org}}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{private}");
    let (_, usable) = p.get(&format!("/v3/organizations/{org}/domains"), &t).await;
    assert_eq!(usable["pagination"]["total_results"], 2);
    let (_, default) = p.get(&format!("/v3/organizations/{org}/domains/default"), &t).await;
    assert_eq!(default["name"], "apps.localhost");
    let (_, flags) = p.get("/v3/feature_flags/user_org_creation", &t).await;
    assert_eq!(flags["enabled"], false);
    let (_, quota) = p.get(&format!("/v3/organizations/{org}"), &t).await;
    let q = quota["relationships"]["quota"]["data"]["guid"].as_str().unwrap().to_string();
    let (_, q) = p.get(&format!("/v3/organization_quotas/{q}"), &t).await;
    assert_eq!(q["name"], "default");
    assert_eq!(q["services"]["paid_services_allowed"], true);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("hearth-restart-{}", std::process::id()));
    let db = common::database_url().await;
    let mut config = hearth::config::ServerConfig::for_dir(&dir, db.clone());
    config.admin_password = Some("first-password".into());
    let p = TestPlatform::start_with(config.clone()).await;
    let t = p.admin_token().await;
    let org = p.create_org(&t, "survivor").await;
    let server = p.server.unwrap();
    config.listen = server.addr.to_string();
    server.stop().await.unwrap();
    let creds = std::fs::read_to_string(dir.join("admin-credentials.toml")).unwrap();
    assert!(creds.contains("first-password"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("admin-credentials.toml")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the credentials file is readable by its owner only");
    config.admin_password = None;
    let p = TestPlatform::start_with(config).await;
    let (s, v) = p.get(&format!("/v3/organizations/{org}"), &t).await;
    assert_eq!(s, StatusCode::OK, "the old token still verifies and the org is still there: {v}");
    assert_eq!(p.admin_password, "first-password");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_cf_cli_needs_beyond_the_basics() {
    let p = TestPlatform::start().await;
    let t = p.admin_token().await;
    // `cf logout` revokes the refresh token by presenting it.
    let login: Value = p
        .http
        .post(format!("{}/oauth/token", p.url))
        .basic_auth("cf", Some(""))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", "admin-secret")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rt = login["refresh_token"].as_str().unwrap();
    let jti = login["jti"].as_str().unwrap();
    let r = p.http.delete(format!("{}/oauth/token/revoke/{jti}-r", p.url)).bearer_auth(rt).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = p
        .http
        .post(format!("{}/oauth/token", p.url))
        .basic_auth("cf", Some(""))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a revoked refresh token no longer works");
    // `cf apps` reads per-process stats; `cf space` lists security groups.
    let org = p.create_org(&t, "cli-needs").await;
    let space = p.create_space(&t, &org, "s").await;
    let (_, app) =
        p.post("/v3/apps", &t, json!({"name": "a", "relationships": {"space": {"data": {"guid": space}}}})).await;
    let (s, stats) = p.get(&format!("/v3/processes/{}/stats", app["guid"].as_str().unwrap()), &t).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stats["resources"][0]["state"], "DOWN", "nothing runs until the scheduler lands");
    let (s, _) = p.get(&format!("/v3/spaces/{space}/running_security_groups"), &t).await;
    assert_eq!(s, StatusCode::OK);
    // `cf create-space` as a client gives the client roles by its id.
    let (s, client) = p.get("/oauth/clients/admin", &t).await;
    assert_eq!(s, StatusCode::OK);
    assert!(client.get("client_secret").is_none());
    let (s, role) = p
        .post("/v3/roles", &t, json!({"type": "organization_manager", "relationships": {"user": {"data": {"guid": "admin"}}, "organization": {"data": {"guid": org}}}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{role}");
    let (_, users) = p.get(&format!("/v3/roles?organization_guids={org}&include=user"), &t).await;
    assert_eq!(users["included"]["users"][0]["username"], "admin");
    assert_eq!(users["included"]["users"][0]["origin"], Value::Null, "a client shows no origin");
    p.stop().await;
}
