//! Service instances (`/v3/service_instances`). Only user-provided instances exist here:
//! credentials, tags, a syslog drain and a route service URL the user gives, owned by a
//! space. Managed instances need a service broker, and this platform has none yet, so
//! `type: managed` is refused. Credentials are secrets: they appear only at
//! `/credentials` (for callers who may read the space's secrets) and in bound apps' env.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, Cond, Conn, Metadata, ServiceBinding, ServiceInstance, Space, Value as SqlValue};
use serde_json::{Map, Value, json};

use super::audit_events::Target;
use super::{apply_metadata, audit, created, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules, only_params};
use crate::services_env::USER_PROVIDED;
use crate::{ApiState, render};

/// Refusal of `type: managed`.
pub const NO_BROKERS: &str = "Managed service instances need a service broker, and no service brokers are available \
     on this platform yet. Create a user-provided service instance instead (type 'user-provided').";

pub fn render(ctx: &Ctx, si: &ServiceInstance, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/service_instances/{}", si.guid);
    let op = if si.updated_at == si.created_at { "create" } else { "update" };
    json!({
        "guid": si.guid,
        "created_at": render::time(&si.created_at),
        "updated_at": render::time(&si.updated_at),
        "name": si.name,
        "tags": si.tags,
        "type": si.kind,
        "syslog_drain_url": si.syslog_drain_url,
        "route_service_url": si.route_service_url,
        "last_operation": {
            "type": op,
            "state": "succeeded",
            "description": "Operation succeeded",
            "created_at": render::time(&si.updated_at),
            "updated_at": render::time(&si.updated_at),
        },
        "metadata": render::metadata(md),
        "relationships": {"space": render::rel(Some(&si.space_guid))},
        "links": {
            "self": render::link(ctx, &path),
            "space": render::link(ctx, &format!("/v3/spaces/{}", si.space_guid)),
            "service_credential_bindings":
                render::link(ctx, &format!("/v3/service_credential_bindings?service_instance_guids={}", si.guid)),
            "service_route_bindings":
                render::link(ctx, &format!("/v3/service_route_bindings?service_instance_guids={}", si.guid)),
            "credentials": render::link(ctx, &format!("{path}/credentials")),
        },
    })
}

async fn render_many(conn: &mut Conn, ctx: &Ctx, items: &[ServiceInstance]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = items.iter().map(|s| s.guid.clone()).collect();
    let md = store::metadata_for(conn, &guids).await?;
    Ok(items.iter().map(|s| render(ctx, s, md.get(&s.guid))).collect())
}

fn visibility(ctx: &Ctx) -> Option<Cond> {
    ctx.viewer.readable_spaces().map(|s| Cond::In("space_guid", s))
}

/// The instance if the caller may see it (404 otherwise).
pub async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<ServiceInstance> {
    let si: Option<ServiceInstance> = store::get(conn, guid).await?;
    si.filter(|s| ctx.viewer.can_read_space(&s.space_guid)).ok_or(ApiError::NotFound("Service instance"))
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "space_guids", "organization_guids", "type"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &[],
    labels: true,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds: Vec<Cond> = visibility(&ctx).into_iter().collect();
    params.in_filters(&mut conds, &[("names", "name"), ("guids", "guid"), ("space_guids", "space_guid")]);
    if let Some(t) = params.filter("type") {
        if let Some(bad) = t.iter().find(|t| *t != "managed" && *t != USER_PROVIDED) {
            return Err(ApiError::BadQueryParameter(format!("Type must be one of 'managed', 'user-provided' ({bad})")));
        }
        conds.push(Cond::In("kind", t.clone()));
    }
    if let Some(v) = params.filter("organization_guids") {
        conds.push(Cond::Sub(
            "service_instances.space_guid IN (SELECT guid FROM spaces WHERE org_guid IN ({}))",
            v.clone(),
        ));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<ServiceInstance>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, &ctx, &page.items).await?;
    Ok(render::list(&ctx, "/v3/service_instances", &params, page.total, resources, None))
}

pub async fn get_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    only_params(q.as_deref(), &[])?;
    let mut conn = state.store.conn().await?;
    let si = find_visible(&mut conn, &ctx, &guid).await?;
    let md = super::metadata_of(&mut conn, &si.guid).await?;
    Ok(ok(render(&ctx, &si, Some(&md))))
}

pub async fn credentials(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let si = find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_read_secrets(&si.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    Ok(ok(si.credentials))
}

/// The user-provided fields of a create or update body, checked as CC's messages check them.
#[derive(Debug, Default, PartialEq)]
pub struct Fields {
    pub name: Option<String>,
    pub credentials: Option<Value>,
    pub tags: Option<Value>,
    pub syslog_drain_url: Option<Option<String>>,
    pub route_service_url: Option<Option<String>>,
}

fn valid_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.contains(char::is_whitespace)
    })
}

fn opt_url(body: &Body, key: &str, label: &str) -> ApiResult<Option<Option<String>>> {
    if !body.has(key) {
        return Ok(None);
    }
    let v = body.opt_str(key)?;
    if let Some(url) = v.as_deref().filter(|u| !u.is_empty())
        && !valid_url(url)
    {
        return Err(ApiError::Unprocessable(format!("{label} must be a valid URI")));
    }
    Ok(Some(v.filter(|u| !u.is_empty())))
}

pub fn fields(body: &Body) -> ApiResult<Fields> {
    let name = body.opt_str("name")?;
    if let Some(n) = &name {
        super::check_name(n)?;
    }
    let credentials = match body.raw("credentials") {
        None => None,
        Some(Value::Object(o)) => Some(Value::Object(o.clone())),
        Some(_) => return Err(ApiError::Unprocessable("Credentials must be an object".into())),
    };
    let tags = match body.raw("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            let len: usize = a.iter().filter_map(Value::as_str).map(str::len).sum();
            if len > 2048 {
                return Err(ApiError::Unprocessable(
                    "Tags combined length must be no more than 2048 characters".into(),
                ));
            }
            Some(Value::Array(a.clone()))
        }
        Some(_) => return Err(ApiError::Unprocessable("Tags must be a list of strings".into())),
    };
    let syslog_drain_url = opt_url(body, "syslog_drain_url", "Syslog drain url")?;
    let route_service_url = opt_url(body, "route_service_url", "Route service url")?;
    if let Some(Some(u)) = &route_service_url
        && !u.starts_with("https://")
    {
        return Err(ApiError::Unprocessable("Route service url must be https".into()));
    }
    Ok(Fields { name, credentials, tags, syslog_drain_url, route_service_url })
}

async fn name_taken(conn: &mut Conn, space: &str, name: &str, except: Option<&str>) -> ApiResult<()> {
    let clash: Option<ServiceInstance> = store::find_one(
        conn,
        &[Cond::Eq("space_guid", SqlValue::Text(space.into())), Cond::Eq("name", SqlValue::Text(name.into()))],
    )
    .await?;
    match clash {
        Some(c) if Some(c.guid.as_str()) != except => {
            Err(ApiError::Unprocessable(format!("The service instance name is taken: {name}")))
        }
        _ => Ok(()),
    }
}

/// What audit events record of a request: never the credentials.
fn audit_request(f: &Fields) -> Value {
    let mut req = Map::new();
    if let Some(n) = &f.name {
        req.insert("name".into(), json!(n));
    }
    if f.credentials.is_some() {
        req.insert("credentials".into(), json!("[PRIVATE DATA HIDDEN]"));
    }
    if let Some(t) = &f.tags {
        req.insert("tags".into(), t.clone());
    }
    if let Some(u) = &f.syslog_drain_url {
        req.insert("syslog_drain_url".into(), json!(u));
    }
    if let Some(u) = &f.route_service_url {
        req.insert("route_service_url".into(), json!(u));
    }
    json!({"request": req})
}

const CREATE_FIELDS: &[&str] =
    &["type", "name", "relationships", "credentials", "tags", "syslog_drain_url", "route_service_url", "metadata"];

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let raw: Value = serde_json::from_slice(&body).map_err(|e| ApiError::MessageParse(e.to_string()))?;
    match raw.get("type") {
        Some(Value::String(t)) if t == "managed" => return Err(ApiError::Unprocessable(NO_BROKERS.into())),
        Some(Value::String(t)) if t == USER_PROVIDED => {}
        _ => return Err(ApiError::Unprocessable("Type must be one of 'managed', 'user-provided'".into())),
    }
    let body = Body::parse(&body, CREATE_FIELDS)?;
    body.check_relationships(&["space"])?;
    let f = fields(&body)?;
    let name = f.name.clone().ok_or_else(|| ApiError::Unprocessable("Name can't be blank".into()))?;
    let space_guid = body.relationship_guid("space")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    // As CC: a space the caller cannot see is a 422, one it may not write to a 403.
    let space: Option<Space> = store::get(&mut tx, &space_guid).await?;
    let space = space.filter(|s| ctx.viewer.can_read_space(&s.guid)).ok_or_else(|| {
        ApiError::Unprocessable("Invalid space. Ensure that the space exists and you have access to it.".into())
    })?;
    if !ctx.viewer.can_develop_space(&space.guid) {
        return Err(ApiError::NotAuthorized);
    }
    name_taken(&mut tx, &space.guid, &name, None).await?;
    let now = store::now();
    let si = ServiceInstance {
        guid: store::new_guid(),
        name,
        kind: USER_PROVIDED.into(),
        space_guid: space.guid.clone(),
        credentials: f.credentials.clone().unwrap_or_else(|| json!({})),
        tags: f.tags.clone().unwrap_or_else(|| json!([])),
        syslog_drain_url: f.syslog_drain_url.clone().flatten(),
        route_service_url: f.route_service_url.clone().flatten(),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &si).await?;
    apply_metadata(&mut tx, &si.guid, &metadata).await?;
    let target = Target { guid: &si.guid, kind: "user_provided_service_instance", name: &si.name };
    let event = "audit.user_provided_service_instance.create";
    audit(&mut tx, &ctx, event, target, audit_request(&f), Some(&space.guid), Some(&space.org_guid)).await?;
    let md = super::metadata_of(&mut tx, &si.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &si, Some(&md))))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body =
        Body::parse(&body, &["name", "credentials", "tags", "syslog_drain_url", "route_service_url", "metadata"])?;
    let f = fields(&body)?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut si = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&si.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(name) = &f.name {
        name_taken(&mut tx, &si.space_guid, name, Some(&si.guid)).await?;
        si.name = name.clone();
    }
    if let Some(c) = &f.credentials {
        si.credentials = c.clone();
    }
    if let Some(t) = &f.tags {
        si.tags = t.clone();
    }
    if let Some(u) = &f.syslog_drain_url {
        si.syslog_drain_url = u.clone();
    }
    if let Some(u) = &f.route_service_url {
        si.route_service_url = u.clone();
    }
    si.updated_at = store::now();
    store::update(&mut tx, &si).await?;
    apply_metadata(&mut tx, &si.guid, &metadata).await?;
    let space: Option<Space> = store::get(&mut tx, &si.space_guid).await?;
    let target = Target { guid: &si.guid, kind: "user_provided_service_instance", name: &si.name };
    let event = "audit.user_provided_service_instance.update";
    let org = space.as_ref().map(|s| s.org_guid.as_str());
    audit(&mut tx, &ctx, event, target, audit_request(&f), Some(&si.space_guid), org).await?;
    let md = super::metadata_of(&mut tx, &si.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &si, Some(&md))))
}

/// 204 once gone. Bound instances are refused (422) unless `purge=true`, which deletes
/// their bindings too (no broker needs telling for a user-provided instance).
pub async fn delete_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = only_params(q.as_deref(), &["purge"])?;
    let purge = match pairs.iter().find(|(k, _)| k == "purge").map(|(_, v)| v.as_str()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadQueryParameter("Purge must be a boolean".into())),
    };
    let mut tx = state.store.begin().await?;
    let si = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&si.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let by_instance = [Cond::Eq("service_instance_guid", SqlValue::Text(si.guid.clone()))];
    let bindings: Vec<ServiceBinding> = store::find_all(&mut tx, by_instance.to_vec()).await?;
    if !bindings.is_empty() && !purge {
        return Err(ApiError::AssociationNotEmpty(
            "Please delete the service_bindings, service_keys, and routes associations for your service_instances."
                .into(),
        ));
    }
    let space: Option<Space> = store::get(&mut tx, &si.space_guid).await?;
    let org = space.as_ref().map(|s| s.org_guid.clone());
    for b in &bindings {
        store::delete::<ServiceBinding>(&mut tx, &b.guid).await?;
        let target = Target { guid: &b.guid, kind: "service_binding", name: b.name.as_deref().unwrap_or("") };
        let data = json!({"request": {"app_guid": b.app_guid, "service_instance_guid": si.guid}});
        audit(&mut tx, &ctx, "audit.service_binding.delete", target, data, Some(&si.space_guid), org.as_deref())
            .await?;
    }
    store::delete::<ServiceInstance>(&mut tx, &si.guid).await?;
    let target = Target { guid: &si.guid, kind: "user_provided_service_instance", name: &si.name };
    let event = "audit.user_provided_service_instance.delete";
    audit(&mut tx, &ctx, event, target, json!({"request": {}}), Some(&si.space_guid), org.as_deref()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ApiResult<Fields> {
        fields(&Body::parse(s.as_bytes(), CREATE_FIELDS)?)
    }

    #[test]
    fn fields_are_checked_as_cc_checks_them() {
        let f = parse(r#"{"name":"db","credentials":{"uri":"x"},"tags":["a"],"syslog_drain_url":"syslog://h:1"}"#)
            .expect("valid");
        assert_eq!(f.name.as_deref(), Some("db"));
        assert_eq!(f.syslog_drain_url, Some(Some("syslog://h:1".into())));
        assert_eq!(f.route_service_url, None);
        let err = |s: &str| parse(s).expect_err(s).to_string();
        assert_eq!(err(r#"{"credentials":"x"}"#), "Credentials must be an object");
        assert_eq!(err(r#"{"tags":[1]}"#), "Tags must be a list of strings");
        assert_eq!(err(r#"{"syslog_drain_url":"not a url"}"#), "Syslog drain url must be a valid URI");
        assert_eq!(err(r#"{"route_service_url":"http://x"}"#), "Route service url must be https");
        assert_eq!(err(r#"{"name":""}"#), "Name can't be blank");
        assert!(err(r#"{"bogus":1}"#).contains("Unknown field(s): 'bogus'"));
        let long = format!(r#"{{"tags":["{}"]}}"#, "t".repeat(2049));
        assert!(err(&long).contains("2048"));
        // An empty URL clears the field (cf uups -l "").
        assert_eq!(parse(r#"{"syslog_drain_url":""}"#).expect("ok").syslog_drain_url, Some(None));
    }
}
