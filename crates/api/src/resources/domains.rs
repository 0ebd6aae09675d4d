//! Domains: shared ones (for every org) and private ones (owned by an org, optionally
//! shared with others).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, Cond, Conn, Domain, DomainShare, Metadata, Org, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, apply_metadata, audit, created, metadata_of, named_parent, ok, spawn_job};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, d: &Domain, shared_with: &[String], md: Option<&Metadata>) -> Value {
    let path = format!("/v3/domains/{}", d.guid);
    let mut links = json!({
        "self": render::link(ctx, &path),
        "route_reservations": render::link(ctx, &format!("{path}/route_reservations")),
        "shared_organizations": render::link(ctx, &format!("{path}/relationships/shared_organizations")),
    });
    if let Some(o) = &d.org_guid {
        links["organization"] = render::link(ctx, &format!("/v3/organizations/{o}"));
    }
    json!({
        "guid": d.guid,
        "created_at": render::time(&d.created_at),
        "updated_at": render::time(&d.updated_at),
        "name": d.name,
        "internal": d.internal,
        "router_group": null,
        "supported_protocols": ["http"],
        "metadata": render::metadata(md),
        "relationships": {
            "organization": render::rel(d.org_guid.as_deref()),
            "shared_organizations": {"data": shared_with.iter().map(|g| json!({"guid": g})).collect::<Vec<_>>()},
        },
        "links": links,
    })
}

async fn render_many(conn: &mut Conn, ctx: &Ctx, domains: &[Domain]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = domains.iter().map(|d| d.guid.clone()).collect();
    let shares: Vec<DomainShare> = store::find_all(conn, vec![Cond::In("domain_guid", guids.clone())]).await?;
    let mut by_domain: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in &shares {
        if ctx.viewer.can_read_org(&s.org_guid) {
            by_domain.entry(s.domain_guid.as_str()).or_default().push(s.org_guid.clone());
        }
    }
    let md = store::metadata_for(conn, &guids).await?;
    Ok(domains
        .iter()
        .map(|d| render(ctx, d, by_domain.get(d.guid.as_str()).map(Vec::as_slice).unwrap_or(&[]), md.get(&d.guid)))
        .collect())
}

/// Domains the caller may see: shared ones, and private ones of (or shared with) its orgs.
fn visibility(ctx: &Ctx) -> Option<Cond> {
    let orgs = ctx.viewer.domain_readable_orgs()?;
    Some(Cond::Or(vec![
        Cond::Null("org_guid"),
        Cond::In("org_guid", orgs.clone()),
        Cond::Sub("domains.guid IN (SELECT domain_guid FROM domain_shared_orgs WHERE org_guid IN ({}))", orgs),
    ]))
}

/// Domains usable by an org.
pub(super) fn usable_by(org_guid: &str) -> Cond {
    Cond::Or(vec![
        Cond::Null("org_guid"),
        Cond::Eq("org_guid", SqlValue::Text(org_guid.into())),
        Cond::Sub(
            "domains.guid IN (SELECT domain_guid FROM domain_shared_orgs WHERE org_guid IN ({}))",
            vec![org_guid.into()],
        ),
    ])
}

/// The domain if the space's org may put routes on it.
pub async fn usable_domain(conn: &mut Conn, domain_guid: &str, org_guid: &str) -> ApiResult<Option<Domain>> {
    Ok(store::find_one(conn, &[Cond::Eq("guid", SqlValue::Text(domain_guid.into())), usable_by(org_guid)]).await?)
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "organization_guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &[],
    labels: true,
};

async fn list_with(
    state: &ApiState,
    ctx: &Ctx,
    q: Option<&str>,
    path: &str,
    mut conds: Vec<Cond>,
) -> ApiResult<Response> {
    let params = ListParams::parse(q, &RULES)?;
    conds.extend(visibility(ctx));
    params.in_filters(&mut conds, &[("names", "name"), ("guids", "guid"), ("organization_guids", "org_guid")]);
    let mut conn = state.store.conn().await?;
    let page = store::list::<Domain>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, ctx, &page.items).await?;
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/domains", vec![]).await
}

pub async fn list_for_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let org = super::orgs::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    list_with(
        &state,
        &ctx,
        q.as_deref(),
        &format!("/v3/organizations/{}/domains", org.guid),
        vec![usable_by(&org.guid)],
    )
    .await
}

pub async fn default_for_org(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let org = super::orgs::find_visible(&mut conn, &ctx, &guid).await?;
    let spec = store::ListSpec {
        per_page: 1,
        ..store::ListSpec::all(vec![usable_by(&org.guid), Cond::Eq("internal", SqlValue::Int(0))])
    };
    let page = store::list::<Domain>(&mut conn, &spec).await?;
    let domain = page.items.into_iter().next().ok_or(ApiError::NotFound("Domain"))?;
    let rendered = render_many(&mut conn, &ctx, &[domain]).await?;
    Ok(ok(rendered.into_iter().next().unwrap_or(Value::Null)))
}

async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<Domain> {
    let mut conds = vec![Cond::Eq("guid", SqlValue::Text(guid.into()))];
    conds.extend(visibility(ctx));
    let d: Option<Domain> = store::find_one(conn, &conds).await?;
    d.ok_or(ApiError::NotFound("Domain"))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let d = find_visible(&mut conn, &ctx, &guid).await?;
    let rendered = render_many(&mut conn, &ctx, &[d]).await?;
    Ok(ok(rendered.into_iter().next().unwrap_or(Value::Null)))
}

/// A domain name as CF accepts it: dot-separated DNS labels, at least two.
pub fn valid_domain_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "internal", "relationships", "metadata", "router_group"])?;
    body.check_relationships(&["organization", "shared_organizations"])?;
    let name = body.req_str("name")?.to_ascii_lowercase();
    if !valid_domain_name(&name) {
        return Err(ApiError::Unprocessable(
            "Name does not comply with RFC 1035 standards; Name must contain at least one \".\"".into(),
        ));
    }
    let internal = body.opt_bool("internal")?.unwrap_or(false);
    if body.opt_object("router_group")?.is_some() {
        return Err(ApiError::Unprocessable("Router groups (TCP domains) are not supported yet.".into()));
    }
    let metadata = body.metadata()?;
    let org_guid = match body.opt_object("relationships")?.and_then(|r| r.get("organization").cloned()) {
        Some(_) => Some(body.relationship_guid("organization")?),
        None => None,
    };
    let mut tx = state.store.begin().await?;
    match &org_guid {
        None if !ctx.viewer.is_admin() => return Err(ApiError::NotAuthorized),
        None => {}
        Some(o) => {
            let org: Option<Org> = store::get(&mut tx, o).await?;
            let org = named_parent(org.filter(|x| ctx.viewer.can_read_org(&x.guid)), &ctx, || {
                format!("Organization with guid '{o}' does not exist or you do not have access to it.")
            })?;
            if !ctx.viewer.can_manage_org(&org.guid) {
                return Err(ApiError::NotAuthorized);
            }
            if internal {
                return Err(ApiError::Unprocessable("Cannot associate an internal domain with an organization".into()));
            }
        }
    }
    let clash: Option<Domain> = store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
    if clash.is_some() {
        return Err(ApiError::Unprocessable(format!("The domain name \"{name}\" is already in use")));
    }
    let now = store::now();
    let d = Domain {
        guid: store::new_guid(),
        name,
        internal,
        org_guid: org_guid.clone(),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &d).await?;
    apply_metadata(&mut tx, &d.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.domain.create",
        Target { guid: &d.guid, kind: "domain", name: &d.name },
        json!({"request": {"name": d.name}}),
        None,
        org_guid.as_deref(),
    )
    .await?;
    let rendered = render_many(&mut tx, &ctx, std::slice::from_ref(&d)).await?;
    tx.commit().await?;
    Ok(created(rendered.into_iter().next().unwrap_or(Value::Null)))
}

fn can_manage(ctx: &Ctx, d: &Domain) -> bool {
    match &d.org_guid {
        None => ctx.viewer.is_admin(),
        Some(o) => ctx.viewer.can_manage_org(o),
    }
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["metadata"])?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut d = find_visible(&mut tx, &ctx, &guid).await?;
    if !can_manage(&ctx, &d) {
        return Err(ApiError::NotAuthorized);
    }
    d.updated_at = store::now();
    store::update(&mut tx, &d).await?;
    apply_metadata(&mut tx, &d.guid, &metadata).await?;
    let _ = metadata_of(&mut tx, &d.guid).await?;
    let rendered = render_many(&mut tx, &ctx, std::slice::from_ref(&d)).await?;
    tx.commit().await?;
    Ok(ok(rendered.into_iter().next().unwrap_or(Value::Null)))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let d = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !can_manage(&ctx, &d) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let job = spawn_job(&state, &ctx, "domain.delete", "domain", &guid, async move {
        let mut tx = st.store.begin().await?;
        store::execute(
            &mut tx,
            "DELETE FROM metadata WHERE resource_guid IN (SELECT guid FROM routes WHERE domain_guid = $1)",
            vec![SqlValue::Text(d.guid.clone())],
        )
        .await?;
        store::delete::<Domain>(&mut tx, &d.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.domain.delete-request",
            Target { guid: &d.guid, kind: "domain", name: &d.name },
            json!({}),
            None,
            d.org_guid.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}

/// The shared app domain a fresh platform has.
pub async fn seed(conn: &mut Conn, app_domain: &str) -> Result<(), store::Error> {
    let existing: Option<Domain> =
        store::find_one(conn, &[Cond::Eq("name", SqlValue::Text(app_domain.into()))]).await?;
    if existing.is_none() {
        let now = store::now();
        store::insert(
            conn,
            &Domain {
                guid: store::new_guid(),
                name: app_domain.into(),
                internal: false,
                org_guid: None,
                created_at: now.clone(),
                updated_at: now,
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn domain_names_follow_rfc_1035() {
        for ok in ["apps.localhost", "example.com", "a-b.c-d.io"] {
            assert!(super::valid_domain_name(ok), "{ok}");
        }
        for bad in ["localhost", "-a.com", "a..com", "a_b.com", "a.com-", ""] {
            assert!(!super::valid_domain_name(bad), "{bad}");
        }
    }
}
