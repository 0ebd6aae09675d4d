//! Feature flags: platform-wide switches an admin flips.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, Conn, FeatureFlag};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{audit, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

/// CF's flags and their defaults.
const FLAGS: &[(&str, bool)] = &[
    ("app_bits_upload", true),
    ("app_scaling", true),
    ("diego_docker", false),
    ("diego_cnb", false),
    ("env_var_visibility", true),
    ("hide_marketplace_from_unauthenticated_users", false),
    ("private_domain_creation", true),
    ("resource_matching", true),
    ("route_creation", true),
    ("route_sharing", false),
    ("service_instance_creation", true),
    ("service_instance_sharing", false),
    ("set_roles_by_username", true),
    ("space_developer_env_var_visibility", true),
    ("space_scoped_private_broker_creation", true),
    ("task_creation", true),
    ("unset_roles_by_username", true),
    ("user_org_creation", false),
];

fn render(ctx: &Ctx, f: &FeatureFlag) -> Value {
    json!({
        "name": f.name,
        "enabled": f.enabled,
        "updated_at": render::time(&f.updated_at),
        "custom_error_message": f.custom_error_message,
        "links": {"self": render::link(ctx, &format!("/v3/feature_flags/{}", f.name))},
    })
}

const RULES: ListRules = ListRules {
    filters: &[],
    order_by: &[("name", "name"), ("updated_at", "updated_at")],
    default_order: "name",
    includes: &[],
    labels: false,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conn = state.store.conn().await?;
    let page = store::list::<FeatureFlag>(&mut conn, &params.spec(vec![])).await?;
    let resources = page.items.iter().map(|f| render(&ctx, f)).collect();
    Ok(render::list(&ctx, "/v3/feature_flags", &params, page.total, resources, None))
}

async fn find(conn: &mut Conn, name: &str) -> ApiResult<FeatureFlag> {
    let f: Option<FeatureFlag> = store::get(conn, name).await?;
    f.ok_or(ApiError::NotFound("Feature flag"))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(name): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    Ok(ok(render(&ctx, &find(&mut conn, &name).await?)))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["enabled", "custom_error_message"])?;
    let enabled = body.opt_bool("enabled")?;
    let message = body.opt_str("custom_error_message")?;
    let mut tx = state.store.begin().await?;
    let mut f = find(&mut tx, &name).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(e) = enabled {
        f.enabled = e;
    }
    if body.has("custom_error_message") {
        f.custom_error_message = message;
    }
    f.updated_at = store::now();
    store::update(&mut tx, &f).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.feature_flag.update",
        Target { guid: &f.name, kind: "feature_flag", name: &f.name },
        json!({"request": {"enabled": f.enabled}}),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &f)))
}

pub async fn seed(conn: &mut Conn) -> Result<(), store::Error> {
    for (name, enabled) in FLAGS {
        let existing: Option<FeatureFlag> = store::get(conn, name).await?;
        if existing.is_none() {
            store::insert(
                conn,
                &FeatureFlag {
                    name: (*name).into(),
                    enabled: *enabled,
                    custom_error_message: None,
                    updated_at: store::now(),
                },
            )
            .await?;
        }
    }
    Ok(())
}
