//! `GET /`, `GET /v3`, `GET /v3/info`: the documents clients discover the platform by.

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::ok;
use crate::CF_API_VERSION;
use crate::context::BaseUrl;

/// Every collection the V3 root lists (the v7 cf CLI builds its URLs from this map).
const V3_COLLECTIONS: &[&str] = &[
    "app_usage_events",
    "apps",
    "audit_events",
    "buildpacks",
    "builds",
    "deployments",
    "domains",
    "droplets",
    "environment_variable_groups",
    "feature_flags",
    "info",
    "isolation_segments",
    "organizations",
    "organization_quotas",
    "packages",
    "processes",
    "resource_matches",
    "roles",
    "routes",
    "security_groups",
    "service_brokers",
    "service_instances",
    "service_credential_bindings",
    "service_offerings",
    "service_plans",
    "service_route_bindings",
    "service_usage_events",
    "spaces",
    "space_quotas",
    "stacks",
    "tasks",
    "users",
];

pub async fn root(BaseUrl(base): BaseUrl) -> Response {
    let host = base.split("://").nth(1).unwrap_or("localhost");
    let host_no_port = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    let ws = base.replacen("http", "ws", 1);
    ok(json!({
        "links": {
            "self": {"href": base},
            "bits_service": null,
            "cloud_controller_v2": null,
            "cloud_controller_v3": {"href": format!("{base}/v3"), "meta": {"version": CF_API_VERSION}},
            "network_policy_v0": {"href": format!("{base}/networking/v0/external")},
            "network_policy_v1": {"href": format!("{base}/networking/v1/external")},
            "login": {"href": base},
            "uaa": {"href": base},
            "credhub": null,
            "routing": {"href": format!("{base}/routing")},
            "logging": {"href": ws},
            "log_cache": {"href": base},
            "log_stream": {"href": base},
            "app_ssh": {
                "href": format!("{host_no_port}:2222"),
                "meta": {"host_key_fingerprint": "", "oauth_client": "ssh-proxy"}
            },
        }
    }))
}

pub async fn v3(BaseUrl(base): BaseUrl) -> Response {
    let mut links = Map::new();
    links.insert("self".into(), json!({"href": format!("{base}/v3")}));
    for c in V3_COLLECTIONS {
        links.insert((*c).into(), json!({"href": format!("{base}/v3/{c}")}));
    }
    ok(json!({"links": Value::Object(links)}))
}

pub async fn info(BaseUrl(base): BaseUrl) -> Response {
    ok(json!({
        "build": env!("CARGO_PKG_VERSION"),
        "cli_version": {"minimum": "7.0.0", "recommended": "8.0.0"},
        "custom": {},
        "description": "Hearth: a Cloud Foundry application runtime in one binary",
        "name": "Hearth",
        "version": 3,
        "osbapi_version": "2.15",
        "rate_limits": {"enabled": false, "general_limit": null, "reset_interval_in_minutes": null},
        "links": {"self": {"href": format!("{base}/v3/info")}, "support": {"href": ""}},
    }))
}
