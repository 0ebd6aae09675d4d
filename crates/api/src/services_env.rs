//! What an app's bindings put in its environment, as the Cloud Controller renders it:
//! `VCAP_SERVICES` (bound instances grouped by label; user-provided ones under
//! `user-provided`) and `DATABASE_URL` (the first bound credentials `uri` whose scheme is a
//! relational database, in Rails' adapter spelling). Used by the env endpoint, staging and
//! the desired LRPs; the rendering itself is pure.

use hearth_store::{self as store, Cond, Conn, ServiceBinding, ServiceInstance, Value as SqlValue};
use serde_json::{Map, Value, json};

use crate::error::ApiResult;

/// The label CF gives user-provided instances in `VCAP_SERVICES`.
pub const USER_PROVIDED: &str = "user-provided";

/// One bound instance as `VCAP_SERVICES` shows it: the binding's fields over the instance's.
pub fn entry(binding: &ServiceBinding, instance: &ServiceInstance) -> Value {
    json!({
        "label": USER_PROVIDED,
        "name": binding.name.clone().unwrap_or_else(|| instance.name.clone()),
        "tags": instance.tags,
        "instance_guid": instance.guid,
        "instance_name": instance.name,
        "binding_guid": binding.guid,
        "binding_name": binding.name,
        "credentials": instance.credentials,
        "syslog_drain_url": instance.syslog_drain_url,
        "volume_mounts": [],
    })
}

/// `VCAP_SERVICES` for these bindings (in binding order), each with its instance.
pub fn render(bound: &[(ServiceBinding, ServiceInstance)]) -> Value {
    let mut out = Map::new();
    for (binding, instance) in bound {
        let list = out.entry(USER_PROVIDED.to_string()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(entry(binding, instance));
        }
    }
    Value::Object(out)
}

/// `DATABASE_URL` as CF derives it: the first credentials `uri` whose scheme is `mysql`,
/// `mysql2`, `postgres` or `postgresql`, with `mysql` → `mysql2` and `postgresql` → `postgres`.
pub fn database_url(vcap_services: &Value) -> Option<String> {
    let uris = vcap_services
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|s| s["credentials"]["uri"].as_str());
    for uri in uris {
        let Some((scheme, rest)) = uri.split_once("://") else { continue };
        let adapter = match scheme {
            "mysql" | "mysql2" => "mysql2",
            "postgres" | "postgresql" => "postgres",
            _ => continue,
        };
        return Some(format!("{adapter}://{rest}"));
    }
    None
}

/// The app's bindings with their instances, oldest binding first.
pub async fn bound(conn: &mut Conn, app_guid: &str) -> ApiResult<Vec<(ServiceBinding, ServiceInstance)>> {
    let bindings: Vec<ServiceBinding> =
        store::find_all(conn, vec![Cond::Eq("app_guid", SqlValue::Text(app_guid.into()))]).await?;
    let guids: Vec<String> = bindings.iter().map(|b| b.service_instance_guid.clone()).collect();
    let instances: Vec<ServiceInstance> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
    let mut out: Vec<(ServiceBinding, ServiceInstance)> = bindings
        .into_iter()
        .filter_map(|b| {
            let i = instances.iter().find(|i| i.guid == b.service_instance_guid)?.clone();
            Some((b, i))
        })
        .collect();
    out.sort_by(|a, b| (&a.0.created_at, &a.0.guid).cmp(&(&b.0.created_at, &b.0.guid)));
    Ok(out)
}

/// `VCAP_SERVICES` of the app now, and the `DATABASE_URL` it implies.
pub async fn for_app(conn: &mut Conn, app_guid: &str) -> ApiResult<(Value, Option<String>)> {
    let vcap = render(&bound(conn, app_guid).await?);
    let db = database_url(&vcap);
    Ok((vcap, db))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(binding_name: Option<&str>, creds: Value) -> (ServiceBinding, ServiceInstance) {
        let i = ServiceInstance {
            guid: "si-1".into(),
            name: "db".into(),
            kind: USER_PROVIDED.into(),
            space_guid: "s".into(),
            credentials: creds,
            tags: json!(["sql"]),
            syslog_drain_url: None,
            route_service_url: None,
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let b = ServiceBinding {
            guid: "b-1".into(),
            name: binding_name.map(str::to_string),
            app_guid: "a".into(),
            service_instance_guid: "si-1".into(),
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        (b, i)
    }

    #[test]
    fn user_provided_entries_carry_the_binding_over_the_instance() {
        let v = render(&[pair(None, json!({"uri": "postgresql://u:p@h/d"}))]);
        let e = &v["user-provided"][0];
        assert_eq!(e["name"], "db");
        assert_eq!(e["instance_name"], "db");
        assert_eq!(e["binding_name"], Value::Null);
        assert_eq!(e["label"], "user-provided");
        assert_eq!(e["tags"], json!(["sql"]));
        assert_eq!(e["volume_mounts"], json!([]));
        assert_eq!(e["credentials"]["uri"], "postgresql://u:p@h/d");
        let named = render(&[pair(Some("primary"), json!({}))]);
        assert_eq!(named["user-provided"][0]["name"], "primary");
        assert_eq!(render(&[]), json!({}));
    }

    #[test]
    fn database_url_takes_the_first_relational_uri_in_rails_spelling() {
        let v = json!({"user-provided": [
            {"credentials": {"uri": "https://example.com"}},
            {"credentials": {"user": "x"}},
            {"credentials": {"uri": "postgresql://u:p@h:5432/d"}},
            {"credentials": {"uri": "mysql://u@h/d"}},
        ]});
        assert_eq!(database_url(&v).as_deref(), Some("postgres://u:p@h:5432/d"));
        let m = json!({"user-provided": [{"credentials": {"uri": "mysql://u@h/d"}}]});
        assert_eq!(database_url(&m).as_deref(), Some("mysql2://u@h/d"));
        assert_eq!(database_url(&json!({"user-provided": [{"credentials": {"uri": "redis://h"}}]})), None);
        assert_eq!(database_url(&json!({})), None);
    }
}
