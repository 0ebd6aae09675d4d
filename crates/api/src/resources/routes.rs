//! Routes: a host and path on a domain, owned by a space.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, Cond, Conn, Domain, Metadata, Org, Route, RouteMapping, Space, Value as SqlValue};
use serde_json::{Map, Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, apply_metadata, audit, created, named_parent, ok, spawn_job};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules, only_params};
use crate::{ApiState, render};

pub fn url(r: &Route, domain: &str) -> String {
    let host = if r.host.is_empty() { domain.to_string() } else { format!("{}.{domain}", r.host) };
    format!("{host}{}", r.path)
}

pub fn render(ctx: &Ctx, r: &Route, domain_name: &str, md: Option<&Metadata>, dests: &[RouteMapping]) -> Value {
    let path = format!("/v3/routes/{}", r.guid);
    json!({
        "guid": r.guid,
        "protocol": "http",
        "port": r.port,
        "created_at": render::time(&r.created_at),
        "updated_at": render::time(&r.updated_at),
        "host": r.host,
        "path": r.path,
        "url": url(r, domain_name),
        "destinations": dests.iter().map(super::destinations::render).collect::<Vec<_>>(),
        "options": {},
        "metadata": render::metadata(md),
        "relationships": {"space": render::rel(Some(&r.space_guid)), "domain": render::rel(Some(&r.domain_guid))},
        "links": {
            "self": render::link(ctx, &path),
            "space": render::link(ctx, &format!("/v3/spaces/{}", r.space_guid)),
            "domain": render::link(ctx, &format!("/v3/domains/{}", r.domain_guid)),
            "destinations": render::link(ctx, &format!("{path}/destinations")),
        },
    })
}

async fn render_many(conn: &mut Conn, ctx: &Ctx, routes: &[Route]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = routes.iter().map(|r| r.guid.clone()).collect();
    let domain_guids: Vec<String> = routes.iter().map(|r| r.domain_guid.clone()).collect();
    let domains: Vec<Domain> = store::find_all(conn, vec![Cond::In("guid", domain_guids)]).await?;
    let names: BTreeMap<&str, &str> = domains.iter().map(|d| (d.guid.as_str(), d.name.as_str())).collect();
    let md = store::metadata_for(conn, &guids).await?;
    let mappings: Vec<RouteMapping> = store::find_all(conn, vec![Cond::In("route_guid", guids.clone())]).await?;
    Ok(routes
        .iter()
        .map(|r| {
            let dests: Vec<RouteMapping> = mappings.iter().filter(|m| m.route_guid == r.guid).cloned().collect();
            render(ctx, r, names.get(r.domain_guid.as_str()).copied().unwrap_or(""), md.get(&r.guid), &dests)
        })
        .collect())
}

/// Routes of spaces the caller sees, and (as CF) of orgs it audits.
fn visibility(ctx: &Ctx) -> Option<Cond> {
    let spaces = ctx.viewer.readable_spaces()?;
    let audited = ctx.viewer.orgs_with(&[crate::authz::RoleType::OrganizationAuditor]);
    Some(Cond::Or(vec![
        Cond::In("space_guid", spaces),
        Cond::Sub("routes.space_guid IN (SELECT guid FROM spaces WHERE org_guid IN ({}))", audited),
    ]))
}

const RULES: ListRules = ListRules {
    filters: &["hosts", "paths", "ports", "domain_guids", "space_guids", "organization_guids", "app_guids", "guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at")],
    default_order: "created_at",
    includes: &["domain", "space", "space.organization"],
    labels: true,
};

async fn included(conn: &mut Conn, ctx: &Ctx, routes: &[Route], include: &[String]) -> ApiResult<Value> {
    let mut out = Map::new();
    let space_guids: Vec<String> = routes.iter().map(|r| r.space_guid.clone()).collect();
    let spaces: Vec<Space> = store::find_all(conn, vec![Cond::In("guid", space_guids)]).await?;
    for inc in include {
        match inc.as_str() {
            "domain" => {
                let guids: Vec<String> = routes.iter().map(|r| r.domain_guid.clone()).collect();
                let domains: Vec<Domain> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                let md = store::metadata_for(conn, &domains.iter().map(|d| d.guid.clone()).collect::<Vec<_>>()).await?;
                let list: Vec<Value> =
                    domains.iter().map(|d| super::domains::render(ctx, d, &[], md.get(&d.guid))).collect();
                out.insert("domains".into(), Value::Array(list));
            }
            "space" => {
                out.insert("spaces".into(), Value::Array(super::spaces::render_many(conn, ctx, &spaces).await?));
            }
            "space.organization" => {
                let guids: Vec<String> = spaces.iter().map(|s| s.org_guid.clone()).collect();
                let orgs: Vec<Org> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                out.insert("organizations".into(), Value::Array(super::orgs::render_many(conn, ctx, &orgs).await?));
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

async fn list_with(
    state: &ApiState,
    ctx: &Ctx,
    q: Option<&str>,
    path: &str,
    mut conds: Vec<Cond>,
) -> ApiResult<Response> {
    let params = ListParams::parse(q, &RULES)?;
    conds.extend(visibility(ctx));
    params.in_filters(
        &mut conds,
        &[
            ("hosts", "host"),
            ("paths", "path"),
            ("domain_guids", "domain_guid"),
            ("space_guids", "space_guid"),
            ("guids", "guid"),
        ],
    );
    if let Some(v) = params.filter("organization_guids") {
        conds.push(Cond::Sub("routes.space_guid IN (SELECT guid FROM spaces WHERE org_guid IN ({}))", v.clone()));
    }
    if let Some(v) = params.filter("app_guids") {
        conds.push(Cond::Sub(
            "routes.guid IN (SELECT route_guid FROM route_mappings WHERE app_guid IN ({}))",
            v.clone(),
        ));
    }
    if let Some(v) = params.filter("ports") {
        let ports: Vec<Cond> =
            v.iter().filter_map(|p| p.parse::<i64>().ok()).map(|p| Cond::Eq("port", SqlValue::Int(p))).collect();
        conds.push(Cond::Or(ports));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<Route>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, ctx, &page.items).await?;
    let inc = if params.include.is_empty() {
        None
    } else {
        Some(included(&mut conn, ctx, &page.items, &params.include).await?)
    };
    Ok(render::list(ctx, path, &params, page.total, resources, inc))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/routes", vec![]).await
}

pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    let mapped = Cond::Sub(
        "routes.guid IN (SELECT route_guid FROM route_mappings WHERE app_guid IN ({}))",
        vec![app.guid.clone()],
    );
    list_with(&state, &ctx, q.as_deref(), &format!("/v3/apps/{}/routes", app.guid), vec![mapped]).await
}

pub(super) async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<Route> {
    let mut conds = vec![Cond::Eq("guid", SqlValue::Text(guid.into()))];
    conds.extend(visibility(ctx));
    let r: Option<Route> = store::find_one(conn, &conds).await?;
    r.ok_or(ApiError::NotFound("Route"))
}

pub async fn get_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = only_params(q.as_deref(), &["include"])?;
    let include: Vec<String> =
        pairs.iter().filter(|(k, _)| k == "include").flat_map(|(_, v)| v.split(',').map(str::to_string)).collect();
    if let Some(bad) = include.iter().find(|i| !RULES.includes.contains(&i.as_str())) {
        return Err(ApiError::BadQueryParameter(format!("Invalid included resource: '{bad}'")));
    }
    let mut conn = state.store.conn().await?;
    let r = find_visible(&mut conn, &ctx, &guid).await?;
    let mut out =
        render_many(&mut conn, &ctx, std::slice::from_ref(&r)).await?.into_iter().next().unwrap_or(Value::Null);
    if !include.is_empty() {
        out["included"] = included(&mut conn, &ctx, std::slice::from_ref(&r), &include).await?;
    }
    Ok(ok(out))
}

/// A route host: empty, `*`, or one DNS label.
pub fn valid_host(host: &str) -> bool {
    host.is_empty()
        || host == "*"
        || (host.len() <= 63
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !host.starts_with('-')
            && !host.ends_with('-'))
}

/// A route path: empty, or `/…` without `?`, and not just `/`.
pub fn check_path(path: &str) -> ApiResult<()> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(ApiError::Unprocessable("Path must begin with /".into()));
    }
    if path == "/" {
        return Err(ApiError::Unprocessable("Path cannot be exactly /".into()));
    }
    if path.contains('?') {
        return Err(ApiError::Unprocessable("Path cannot contain ?".into()));
    }
    if path.len() > 128 {
        return Err(ApiError::Unprocessable("Path is too long (maximum is 128 characters)".into()));
    }
    Ok(())
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["host", "path", "port", "relationships", "metadata", "options"])?;
    body.check_relationships(&["space", "domain"])?;
    let host = body.opt_str("host")?.unwrap_or_default().to_ascii_lowercase();
    let path = body.opt_str("path")?.unwrap_or_default();
    if !valid_host(&host) {
        return Err(ApiError::Unprocessable(
            "Host must be either \"*\" or contain only alphanumeric characters, \"_\", or \"-\"".into(),
        ));
    }
    check_path(&path)?;
    if body.opt_int("port")?.flatten().is_some() {
        return Err(ApiError::Unprocessable("Routes with protocol 'http' do not support ports.".into()));
    }
    if let Some(opts) = body.sub("options", &["loadbalancing"])?
        && let Some(lb) = opts.opt_str("loadbalancing")?
        && lb != "round-robin"
        && lb != "least-connection"
    {
        return Err(ApiError::Unprocessable(
            "Loadbalancing must be one of 'round-robin, least-connection' if present".into(),
        ));
    }
    let space_guid = body.relationship_guid("space")?;
    let domain_guid = body.relationship_guid("domain")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let space: Option<Space> = store::get(&mut tx, &space_guid).await?;
    let space = named_parent(space.filter(|s| ctx.viewer.can_read_space(&s.guid)), &ctx, || {
        "Invalid space. Ensure that the space exists and you have access to it.".into()
    })?;
    if !ctx.viewer.can_operate_space(&space.guid) {
        return Err(ApiError::NotAuthorized);
    }
    let domain = super::domains::usable_domain(&mut tx, &domain_guid, &space.org_guid).await?.ok_or_else(|| {
        ApiError::Unprocessable("Invalid domain. Ensure that the domain exists and you have access to it.".into())
    })?;
    if host == "*" && domain.org_guid.is_none() && !ctx.viewer.is_admin() {
        return Err(ApiError::Unprocessable(
            "You do not have sufficient permissions to create a route with a wildcard host on a shared domain.".into(),
        ));
    }
    if host.is_empty() && domain.org_guid.is_none() {
        return Err(ApiError::Unprocessable("Missing host. Routes in shared domains must have a host defined.".into()));
    }
    let clash: Option<Route> = store::find_one(
        &mut tx,
        &[
            Cond::Eq("domain_guid", SqlValue::Text(domain.guid.clone())),
            Cond::Eq("host", SqlValue::Text(host.clone())),
            Cond::Eq("path", SqlValue::Text(path.clone())),
        ],
    )
    .await?;
    if clash.is_some() {
        let with_path = if path.is_empty() { String::new() } else { format!(" and path '{path}'") };
        return Err(ApiError::Unprocessable(format!(
            "Route already exists with host '{host}'{with_path} for domain '{}'.",
            domain.name
        )));
    }
    let now = store::now();
    let route = Route {
        guid: store::new_guid(),
        host,
        path,
        port: None,
        domain_guid: domain.guid.clone(),
        space_guid: space.guid.clone(),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &route).await?;
    apply_metadata(&mut tx, &route.guid, &metadata).await?;
    let u = url(&route, &domain.name);
    audit(
        &mut tx,
        &ctx,
        "audit.route.create",
        Target { guid: &route.guid, kind: "route", name: &u },
        json!({"request": {"host": route.host, "path": route.path, "domain_guid": domain.guid}}),
        Some(&space.guid),
        Some(&space.org_guid),
    )
    .await?;
    let md = super::metadata_of(&mut tx, &route.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &route, &domain.name, Some(&md), &[])))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["metadata", "options"])?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut r = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_operate_space(&r.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    r.updated_at = store::now();
    store::update(&mut tx, &r).await?;
    apply_metadata(&mut tx, &r.guid, &metadata).await?;
    let out = render_many(&mut tx, &ctx, std::slice::from_ref(&r)).await?;
    tx.commit().await?;
    Ok(ok(out.into_iter().next().unwrap_or(Value::Null)))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let r = find_visible(&mut conn, &ctx, &guid).await?;
    let space: Option<Space> = store::get(&mut conn, &r.space_guid).await?;
    drop(conn);
    if !ctx.viewer.can_operate_space(&r.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let org = space.map(|s| s.org_guid);
    let job = spawn_job(&state, &ctx, "route.delete", "route", &guid, async move {
        let mut tx = st.store.begin().await?;
        store::delete::<Route>(&mut tx, &r.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.route.delete-request",
            Target { guid: &r.guid, kind: "route", name: &r.host },
            json!({"request": {"recursive": true}}),
            Some(&r.space_guid),
            org.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}

pub async fn reservations(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = only_params(q.as_deref(), &["host", "path", "port"])?;
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut conn = state.store.conn().await?;
    let mut conds = vec![Cond::Eq("guid", SqlValue::Text(guid.clone()))];
    if let Some(orgs) = ctx.viewer.domain_readable_orgs() {
        conds.push(Cond::Or(vec![
            Cond::Null("org_guid"),
            Cond::In("org_guid", orgs.clone()),
            Cond::Sub("domains.guid IN (SELECT domain_guid FROM domain_shared_orgs WHERE org_guid IN ({}))", orgs),
        ]));
    }
    let domain: Option<Domain> = store::find_one(&mut conn, &conds).await?;
    let domain = domain.ok_or(ApiError::NotFound("Domain"))?;
    let n = store::count::<Route>(
        &mut conn,
        &[
            Cond::Eq("domain_guid", SqlValue::Text(domain.guid)),
            Cond::Eq("host", SqlValue::Text(get("host").to_ascii_lowercase())),
            Cond::Eq("path", SqlValue::Text(get("path"))),
        ],
    )
    .await?;
    Ok(ok(json!({"matching_route": n > 0})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths_are_checked_as_cf_does() {
        assert!(valid_host("my-app") && valid_host("*") && valid_host(""));
        assert!(!valid_host("my_app") && !valid_host("-x") && !valid_host(&"a".repeat(64)));
        assert!(check_path("/api").is_ok() && check_path("").is_ok());
        assert!(check_path("/").is_err() && check_path("api").is_err() && check_path("/a?b").is_err());
    }
}
