//! Organization quotas: limits on what an org's apps, services, routes and domains use.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, Cond, Conn, Org, OrgQuota, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{audit, created, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

/// Each limit group and its integer limits (null = unlimited).
const GROUPS: &[(&str, &[&str])] = &[
    (
        "apps",
        &[
            "total_memory_in_mb",
            "per_process_memory_in_mb",
            "log_rate_limit_in_bytes_per_second",
            "total_instances",
            "per_app_tasks",
        ],
    ),
    ("services", &["total_service_instances", "total_service_keys"]),
    ("routes", &["total_routes", "total_reserved_ports"]),
    ("domains", &["total_domains"]),
];

fn unlimited() -> Value {
    json!({
        "apps": {"total_memory_in_mb": null, "per_process_memory_in_mb": null, "log_rate_limit_in_bytes_per_second": null, "total_instances": null, "per_app_tasks": null},
        "services": {"paid_services_allowed": true, "total_service_instances": null, "total_service_keys": null},
        "routes": {"total_routes": null, "total_reserved_ports": null},
        "domains": {"total_domains": null},
    })
}

/// Applies the limit groups present in `body` onto `spec`.
fn apply_limits(body: &Body, spec: &mut Value) -> ApiResult<()> {
    for (group, keys) in GROUPS {
        let mut allowed: Vec<&str> = keys.to_vec();
        if *group == "services" {
            allowed.push("paid_services_allowed");
        }
        let Some(g) = body.sub(group, &allowed)? else { continue };
        for key in *keys {
            if let Some(v) = g.opt_int(key)? {
                if v.is_some_and(|n| n < 0) {
                    return Err(ApiError::Unprocessable(format!("{key} must be greater than or equal to 0")));
                }
                spec[*group][*key] = json!(v);
            }
        }
        if *group == "services"
            && let Some(b) = g.opt_bool("paid_services_allowed")?
        {
            spec["services"]["paid_services_allowed"] = json!(b);
        }
    }
    Ok(())
}

async fn render(conn: &mut Conn, ctx: &Ctx, q: &OrgQuota) -> ApiResult<Value> {
    let orgs: Vec<Org> = store::find_all(conn, vec![Cond::Eq("quota_guid", SqlValue::Text(q.guid.clone()))]).await?;
    let visible: Vec<Value> =
        orgs.iter().filter(|o| ctx.viewer.can_read_org(&o.guid)).map(|o| json!({"guid": o.guid})).collect();
    let mut out = json!({
        "guid": q.guid,
        "created_at": render::time(&q.created_at),
        "updated_at": render::time(&q.updated_at),
        "name": q.name,
        "relationships": {"organizations": {"data": visible}},
        "links": {"self": render::link(ctx, &format!("/v3/organization_quotas/{}", q.guid))},
    });
    for (group, _) in GROUPS {
        out[*group] = q.spec[*group].clone();
    }
    Ok(out)
}

/// Every caller may read every organization quota (as in CF).
fn visibility(_ctx: &Ctx) -> Option<Cond> {
    None
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "organization_guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &[],
    labels: false,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds: Vec<Cond> = visibility(&ctx).into_iter().collect();
    params.in_filters(&mut conds, &[("names", "name"), ("guids", "guid")]);
    if let Some(v) = params.filter("organization_guids") {
        conds.push(Cond::Sub(
            "organization_quotas.guid IN (SELECT quota_guid FROM organizations WHERE guid IN ({}))",
            v.clone(),
        ));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<OrgQuota>(&mut conn, &params.spec(conds)).await?;
    let mut resources = Vec::new();
    for q in &page.items {
        resources.push(render(&mut conn, &ctx, q).await?);
    }
    Ok(render::list(&ctx, "/v3/organization_quotas", &params, page.total, resources, None))
}

async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<OrgQuota> {
    let mut conds = vec![Cond::Eq("guid", SqlValue::Text(guid.into()))];
    conds.extend(visibility(ctx));
    let q: Option<OrgQuota> = store::find_one(conn, &conds).await?;
    q.ok_or(ApiError::NotFound("Organization quota"))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let q = find_visible(&mut conn, &ctx, &guid).await?;
    Ok(ok(render(&mut conn, &ctx, &q).await?))
}

const FIELDS: &[&str] = &["name", "apps", "services", "routes", "domains", "relationships"];

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, FIELDS)?;
    body.check_relationships(&["organizations"])?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let name = body.req_str("name")?;
    super::check_name(&name)?;
    let mut spec = unlimited();
    apply_limits(&body, &mut spec)?;
    let mut tx = state.store.begin().await?;
    let clash: Option<OrgQuota> = store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
    if clash.is_some() {
        return Err(ApiError::Unprocessable(format!("Organization Quota '{name}' already exists.")));
    }
    let now = store::now();
    let q = OrgQuota { guid: store::new_guid(), name, spec, created_at: now.clone(), updated_at: now };
    store::insert(&mut tx, &q).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.organization_quota.create",
        Target { guid: &q.guid, kind: "organization_quota", name: &q.name },
        json!({}),
        None,
        None,
    )
    .await?;
    let out = render(&mut tx, &ctx, &q).await?;
    tx.commit().await?;
    Ok(created(out))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let body = Body::parse(&body, &["name", "apps", "services", "routes", "domains"])?;
    let mut tx = state.store.begin().await?;
    let mut q = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(name) = body.opt_str("name")? {
        super::check_name(&name)?;
        if name != q.name {
            let clash: Option<OrgQuota> =
                store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
            if clash.is_some() {
                return Err(ApiError::Unprocessable(format!("Organization Quota '{name}' already exists.")));
            }
        }
        q.name = name;
    }
    apply_limits(&body, &mut q.spec)?;
    q.updated_at = store::now();
    store::update(&mut tx, &q).await?;
    let out = render(&mut tx, &ctx, &q).await?;
    tx.commit().await?;
    Ok(ok(out))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let mut tx = state.store.begin().await?;
    let q = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let users = store::count::<Org>(&mut tx, &[Cond::Eq("quota_guid", SqlValue::Text(q.guid.clone()))]).await?;
    if users > 0 {
        return Err(ApiError::Unprocessable("This quota is applied to one or more organizations. Remove this quota from all organizations before deleting.".into()));
    }
    store::delete::<OrgQuota>(&mut tx, &q.guid).await?;
    tx.commit().await?;
    let job =
        super::spawn_job(&state, &ctx, "organization_quota.delete", "organization_quota", &q.guid, async { Ok(()) })
            .await?;
    Ok(super::accepted(&ctx, &job))
}

/// `POST /v3/organization_quotas/:guid/relationships/organizations`.
pub async fn apply(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let body = Body::parse(&body, &["data"])?;
    let data = match body.raw("data") {
        Some(Value::Array(items)) => items.clone(),
        _ => return Err(ApiError::Unprocessable("Data must be an array".into())),
    };
    let mut guids = Vec::new();
    for item in data {
        match item.get("guid").and_then(Value::as_str) {
            Some(g) => guids.push(g.to_string()),
            None => return Err(ApiError::Unprocessable("Data must be an array of objects with a guid".into())),
        }
    }
    let mut tx = state.store.begin().await?;
    let q = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    for g in &guids {
        let org: Option<Org> = store::get(&mut tx, g).await?;
        let mut org =
            org.ok_or_else(|| ApiError::Unprocessable(format!("Organizations with guids [\"{g}\"] do not exist")))?;
        org.quota_guid = Some(q.guid.clone());
        org.updated_at = store::now();
        store::update(&mut tx, &org).await?;
    }
    let orgs: Vec<Org> = store::find_all(&mut tx, vec![Cond::Eq("quota_guid", SqlValue::Text(q.guid.clone()))]).await?;
    tx.commit().await?;
    Ok(ok(json!({
        "data": orgs.iter().map(|o| json!({"guid": o.guid})).collect::<Vec<_>>(),
        "links": {"self": render::link(&ctx, &format!("/v3/organization_quotas/{}/relationships/organizations", q.guid))},
    })))
}

/// The `default` quota every new org gets (CF's defaults).
pub async fn seed(conn: &mut Conn) -> Result<(), store::Error> {
    let existing: Option<OrgQuota> =
        store::find_one(conn, &[Cond::Eq("name", SqlValue::Text("default".into()))]).await?;
    if existing.is_none() {
        let mut spec = unlimited();
        spec["apps"]["total_memory_in_mb"] = json!(10240);
        spec["services"]["total_service_instances"] = json!(100);
        spec["routes"]["total_routes"] = json!(1000);
        let now = store::now();
        store::insert(
            conn,
            &OrgQuota {
                guid: store::new_guid(),
                name: "default".into(),
                spec,
                created_at: now.clone(),
                updated_at: now,
            },
        )
        .await?;
    }
    Ok(())
}
