//! Endpoints whose resources later components fill: they answer with CF's empty shapes
//! so that clients listing them work today.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::ok;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

const ANY_FILTERS: ListRules = ListRules {
    filters: &[
        "names",
        "guids",
        "organization_guids",
        "space_guids",
        "app_guids",
        "states",
        "types",
        "stacks",
        "service_offering_guids",
        "service_plan_guids",
        "service_broker_guids",
        "service_instance_guids",
        "fields[service_plan.service_offering.service_broker]",
        "fields[space.organization]",
        "fields[space]",
        "fields[service_plan]",
        "fields[service_plan.service_offering]",
        "fields[service_broker]",
        "available",
        "space_quota_guids",
        "status_values",
        "status_reasons",
        "sequence_ids",
        "lifecycle_type",
        "running_space_guids",
        "staging_space_guids",
        "globally_enabled_running",
        "globally_enabled_staging",
        "route_guids",
        "service_instance_names",
        "app_guids",
    ],
    order_by: &[
        ("created_at", "created_at"),
        ("updated_at", "updated_at"),
        ("name", "name"),
        ("position", "created_at"),
    ],
    default_order: "created_at",
    includes: &[
        "space",
        "space.organization",
        "service_offering",
        "service_plan",
        "app",
        "service_instance",
        "organization",
    ],
    labels: true,
};

/// An empty page of any collection that has no resources yet.
pub async fn empty_list(ctx: Ctx, OriginalUri(uri): OriginalUri, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &ANY_FILTERS)?;
    Ok(render::list(&ctx, uri.path(), &params, 0, Vec::<serde_json::Value>::new(), None))
}

/// `GET /v3/organizations/:guid/relationships/default_isolation_segment` (none yet).
pub async fn org_isolation_segment(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    super::orgs::find_visible(&mut conn, &ctx, &guid).await?;
    Ok(ok(relationship(&ctx, &format!("/v3/organizations/{guid}/relationships/default_isolation_segment"))))
}

/// `GET /v3/spaces/:guid/relationships/isolation_segment` (none yet).
pub async fn space_isolation_segment(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    super::spaces::find_visible(&mut conn, &ctx, &guid).await?;
    Ok(ok(relationship(&ctx, &format!("/v3/spaces/{guid}/relationships/isolation_segment"))))
}

fn relationship(ctx: &Ctx, path: &str) -> serde_json::Value {
    serde_json::json!({"data": null, "links": {"self": render::link(ctx, path)}})
}

pub async fn unknown() -> Response {
    ApiError::UnknownRequest.into_response()
}
