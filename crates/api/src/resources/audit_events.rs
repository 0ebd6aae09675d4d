//! Audit events (`/v3/audit_events`): one is written, in the same transaction, for every change.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, AuditEvent, Cond, Conn};
use serde_json::{Value, json};

use super::ok;
use crate::authz::RoleType;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

static SEQ: AtomicI64 = AtomicI64::new(0);

/// The next number ordering events written in the same microsecond.
pub(crate) fn next_seq() -> i64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// What an audit event is about.
pub struct Target<'a> {
    pub guid: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

/// Writes an audit event for a change the caller made.
pub async fn audit(
    conn: &mut Conn,
    ctx: &Ctx,
    event_type: &str,
    target: Target<'_>,
    data: Value,
    space_guid: Option<&str>,
    org_guid: Option<&str>,
) -> ApiResult<()> {
    let event = AuditEvent {
        guid: store::new_guid(),
        event_type: event_type.into(),
        actor_guid: ctx.viewer.guid.clone(),
        actor_type: if ctx.claims.is_user() { "user".into() } else { "client".into() },
        actor_name: ctx.viewer.name.clone(),
        target_guid: target.guid.into(),
        target_type: target.kind.into(),
        target_name: target.name.into(),
        data,
        space_guid: space_guid.map(str::to_string),
        org_guid: org_guid.map(str::to_string),
        created_at: store::now(),
        seq: next_seq(),
    };
    store::insert(conn, &event).await?;
    Ok(())
}

fn render(ctx: &Ctx, e: &AuditEvent) -> Value {
    json!({
        "guid": e.guid,
        "created_at": render::time(&e.created_at),
        "updated_at": render::time(&e.created_at),
        "type": e.event_type,
        "actor": {"guid": e.actor_guid, "type": e.actor_type, "name": e.actor_name},
        "target": {"guid": e.target_guid, "type": e.target_type, "name": e.target_name},
        "data": e.data,
        "space": e.space_guid.as_ref().map(|g| json!({"guid": g})),
        "organization": e.org_guid.as_ref().map(|g| json!({"guid": g})),
        "links": {"self": render::link(ctx, &format!("/v3/audit_events/{}", e.guid))},
    })
}

/// Events the caller may see; `None` means all.
fn visibility(ctx: &Ctx) -> Option<Cond> {
    let v = &ctx.viewer;
    if v.reads_all() {
        return None;
    }
    if !v.can_read {
        return Some(Cond::False);
    }
    // CF: org auditors see their orgs' events; space auditors, developers and
    // supporters their spaces'; managers none.
    let spaces = v.spaces_with(&[RoleType::SpaceAuditor, RoleType::SpaceDeveloper, RoleType::SpaceSupporter]);
    let orgs = v.orgs_with(&[RoleType::OrganizationAuditor]);
    Some(Cond::Or(vec![Cond::In("space_guid", spaces), Cond::In("org_guid", orgs)]))
}

const RULES: ListRules = ListRules {
    filters: &["types", "target_guids", "space_guids", "organization_guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "created_at")],
    default_order: "created_at",
    includes: &[],
    labels: false,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds: Vec<Cond> = visibility(&ctx).into_iter().collect();
    params.in_filters(
        &mut conds,
        &[
            ("types", "event_type"),
            ("target_guids", "target_guid"),
            ("space_guids", "space_guid"),
            ("organization_guids", "org_guid"),
        ],
    );
    let mut conn = state.store.conn().await?;
    let page = store::list::<AuditEvent>(&mut conn, &params.spec(conds)).await?;
    let resources = page.items.iter().map(|e| render(&ctx, e)).collect();
    Ok(render::list(&ctx, "/v3/audit_events", &params, page.total, resources, None))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let mut conds = vec![Cond::Eq("guid", store::Value::Text(guid))];
    conds.extend(visibility(&ctx));
    let event: Option<AuditEvent> = store::find_one(&mut conn, &conds).await?;
    let event = event.ok_or(ApiError::NotFound("Event"))?;
    Ok(ok(render(&ctx, &event)))
}
