//! The V3 resources. Each module owns one resource: its JSON shape and its handlers.

mod app_actions;
mod app_children;
mod app_manifest;
mod apps;
pub(crate) mod audit_events;
mod bits;
mod buildpack_staging;
pub(crate) mod buildpacks;
mod builds;
pub(crate) mod builtin_buildpacks;
pub(crate) mod destinations;
mod domains;
mod droplet_bits;
mod droplets;
mod feature_flags;
mod jobs;
mod manifest_diff;
mod manifest_spec;
mod manifests;
mod misc;
mod orgs;
mod packages;
mod process_stats;
mod processes;
mod quotas;
mod roles;
mod root;
mod routes;
mod service_bindings;
mod service_instances;
pub(crate) mod sidecars;
mod spaces;
mod stacks;
pub(crate) mod tasks;
mod users;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_store::{self as store, Conn, Metadata};
use serde_json::Value;

use crate::body::MetadataPatch;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::limits::{Limit, Limits};
use crate::{ApiConfig, ApiState};

pub(crate) use audit_events::audit;
pub use builds::fail_interrupted as fail_interrupted_builds;
pub(crate) use jobs::spawn_job;

/// Every route; the three uploads get their own body limits (the file plus the form around it).
pub fn routes(limits: &Limits) -> Router<ApiState> {
    let upload_limit = |limit| axum::extract::DefaultBodyLimit::max(limits.multipart_body(limit));
    Router::new()
        .route("/", get(root::root))
        .route("/v3", get(root::v3))
        .route("/v3/", get(root::v3))
        .route("/v3/info", get(root::info))
        .route("/v3/organizations", get(orgs::list).post(orgs::create))
        .route("/v3/organizations/{guid}", get(orgs::get_one).patch(orgs::update).delete(orgs::delete_one))
        .route("/v3/organizations/{guid}/domains", get(domains::list_for_org))
        .route("/v3/organizations/{guid}/domains/default", get(domains::default_for_org))
        .route("/v3/organizations/{guid}/users", get(users::list_for_org))
        .route("/v3/organizations/{guid}/relationships/default_isolation_segment", get(misc::org_isolation_segment))
        .route("/v3/spaces", get(spaces::list).post(spaces::create))
        .route("/v3/spaces/{guid}", get(spaces::get_one).patch(spaces::update).delete(spaces::delete_one))
        .route("/v3/spaces/{guid}/users", get(users::list_for_space))
        .route("/v3/spaces/{guid}/features", get(spaces::features))
        .route("/v3/spaces/{guid}/actions/apply_manifest", post(manifests::apply))
        .route("/v3/spaces/{guid}/manifest_diff", post(manifest_diff::diff))
        .route("/v3/processes/{guid}/sidecars", get(sidecars::list_for_process))
        .route("/v3/apps/{guid}/sidecars", get(sidecars::list_for_app).post(sidecars::create))
        .route("/v3/sidecars/{guid}", get(sidecars::get_one).patch(sidecars::update).delete(sidecars::delete_one))
        .route("/v3/spaces/{guid}/relationships/isolation_segment", get(misc::space_isolation_segment))
        .route("/v3/spaces/{guid}/running_security_groups", get(misc::empty_list))
        .route("/v3/spaces/{guid}/staging_security_groups", get(misc::empty_list))
        .route("/v3/users", get(users::list).post(users::create))
        .route("/v3/users/{guid}", get(users::get_one).patch(users::update).delete(users::delete_one))
        .route("/v3/roles", get(roles::list).post(roles::create))
        .route("/v3/roles/{guid}", get(roles::get_one).delete(roles::delete_one))
        .route("/v3/domains", get(domains::list).post(domains::create))
        .route("/v3/domains/{guid}", get(domains::get_one).patch(domains::update).delete(domains::delete_one))
        .route("/v3/domains/{guid}/route_reservations", get(routes::reservations))
        .route("/v3/routes", get(routes::list).post(routes::create))
        .route("/v3/routes/{guid}", get(routes::get_one).patch(routes::update).delete(routes::delete_one))
        .route(
            "/v3/routes/{guid}/destinations",
            get(destinations::list).post(destinations::insert).patch(destinations::replace),
        )
        .route("/v3/routes/{guid}/destinations/{dest}", axum::routing::delete(destinations::delete_one))
        .route("/v3/apps", get(apps::list).post(apps::create))
        .route("/v3/apps/{guid}", get(apps::get_one).patch(apps::update).delete(apps::delete_one))
        .route("/v3/apps/{guid}/environment_variables", get(apps::get_env_vars).patch(apps::patch_env_vars))
        .route("/v3/apps/{guid}/env", get(apps::env))
        .route("/v3/apps/{guid}/manifest", get(app_manifest::get))
        .route("/v3/apps/{guid}/actions/start", post(app_actions::start))
        .route("/v3/apps/{guid}/actions/stop", post(app_actions::stop))
        .route("/v3/apps/{guid}/actions/restart", post(app_actions::restart))
        .route("/v3/apps/{guid}/packages", get(packages::list_for_app))
        .route("/v3/apps/{guid}/builds", get(builds::list_for_app))
        .route("/v3/apps/{guid}/droplets", get(droplets::list_for_app))
        .route("/v3/apps/{guid}/droplets/current", get(droplets::current))
        .route(
            "/v3/apps/{guid}/relationships/current_droplet",
            get(droplets::get_current_relationship).patch(droplets::set_current),
        )
        .route("/v3/packages", get(packages::list).post(packages::create))
        .route("/v3/packages/{guid}", get(packages::get_one).delete(packages::delete_one))
        .route("/v3/packages/{guid}/droplets", get(droplets::list_for_package))
        .route("/v3/packages/{guid}/upload", post(bits::upload).layer(upload_limit(Limit::Package)))
        .route("/v3/packages/{guid}/download", get(bits::download))
        .route("/v3/resource_matches", post(bits::resource_matches))
        .route("/v3/builds", get(builds::list).post(builds::create))
        .route("/v3/builds/{guid}", get(builds::get_one))
        .route("/v3/droplets", get(droplets::list).post(droplet_bits::create))
        .route("/v3/droplets/{guid}/upload", post(droplet_bits::upload).layer(upload_limit(Limit::Droplet)))
        .route("/v3/droplets/{guid}/download", get(droplet_bits::download))
        .route("/v3/droplets/{guid}", get(droplets::get_one).delete(droplets::delete_one))
        .route("/v3/apps/{guid}/processes", get(processes::list_for_app))
        .route("/v3/apps/{guid}/processes/{ptype}", get(processes::get_for_app).patch(processes::update_for_app))
        .route("/v3/apps/{guid}/processes/{ptype}/actions/scale", post(processes::scale_for_app))
        .route("/v3/apps/{guid}/routes", get(routes::list_for_app))
        .route("/v3/processes", get(processes::list))
        .route("/v3/processes/{guid}", get(processes::get_one).patch(processes::update))
        .route("/v3/processes/{guid}/actions/scale", post(processes::scale))
        .route("/v3/processes/{guid}/stats", get(processes::stats))
        .route("/v3/apps/{guid}/processes/{ptype}/stats", get(processes::stats_for_app))
        .route("/v3/stacks", get(stacks::list).post(stacks::create))
        .route("/v3/stacks/{guid}", get(stacks::get_one).patch(stacks::update).delete(stacks::delete_one))
        .route("/v3/feature_flags", get(feature_flags::list))
        .route("/v3/feature_flags/{name}", get(feature_flags::get_one).patch(feature_flags::update))
        .route("/v3/organization_quotas", get(quotas::list).post(quotas::create))
        .route("/v3/organization_quotas/{guid}", get(quotas::get_one).patch(quotas::update).delete(quotas::delete_one))
        .route("/v3/organization_quotas/{guid}/relationships/organizations", post(quotas::apply))
        .route("/v3/audit_events", get(audit_events::list))
        .route("/v3/audit_events/{guid}", get(audit_events::get_one))
        .route("/v3/jobs/{guid}", get(jobs::get_one))
        .route("/v3/isolation_segments", get(misc::empty_list))
        .route("/v3/security_groups", get(misc::empty_list))
        .route("/v3/space_quotas", get(misc::empty_list))
        .route("/v3/deployments", get(misc::empty_list))
        .route("/v3/service_instances", get(service_instances::list).post(service_instances::create))
        .route(
            "/v3/service_instances/{guid}",
            get(service_instances::get_one).patch(service_instances::update).delete(service_instances::delete_one),
        )
        .route("/v3/service_instances/{guid}/credentials", get(service_instances::credentials))
        .route("/v3/service_offerings", get(misc::empty_list))
        .route("/v3/service_plans", get(misc::empty_list))
        .route("/v3/service_brokers", get(misc::empty_list))
        .route("/v3/service_credential_bindings", get(service_bindings::list).post(service_bindings::create))
        .route(
            "/v3/service_credential_bindings/{guid}",
            get(service_bindings::get_one).delete(service_bindings::delete_one),
        )
        .route("/v3/service_credential_bindings/{guid}/details", get(service_bindings::details))
        .route("/v3/service_route_bindings", get(misc::empty_list))
        .route("/v3/buildpacks", get(buildpacks::list).post(buildpacks::create))
        .route(
            "/v3/buildpacks/{guid}",
            get(buildpacks::get_one).patch(buildpacks::update).delete(buildpacks::delete_one),
        )
        .route("/v3/buildpacks/{guid}/upload", post(buildpacks::upload).layer(upload_limit(Limit::Buildpack)))
        .route("/v3/tasks", get(tasks::list))
        .route("/v3/tasks/{guid}", get(tasks::get_one))
        .route("/v3/tasks/{guid}/actions/cancel", post(tasks::cancel))
        .route("/v3/apps/{guid}/tasks", get(tasks::list_for_app).post(tasks::create))
        .fallback(misc::unknown)
}

/// 200 with a JSON body.
pub fn ok<T: serde::Serialize>(v: T) -> Response {
    crate::render::json_response(StatusCode::OK, &v)
}

/// 201 with a JSON body.
pub fn created<T: serde::Serialize>(v: T) -> Response {
    crate::render::json_response(StatusCode::CREATED, &v)
}

/// 202 with `Location` pointing at the job.
pub fn accepted(ctx: &Ctx, job_guid: &str) -> Response {
    let location = ctx.url(&format!("/v3/jobs/{job_guid}"));
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Metadata of one resource.
pub async fn metadata_of(conn: &mut Conn, guid: &str) -> ApiResult<Metadata> {
    Ok(store::metadata_for(conn, &[guid.to_string()]).await?.remove(guid).unwrap_or_default())
}

/// Applies a metadata patch to a resource.
pub async fn apply_metadata(conn: &mut Conn, guid: &str, patch: &MetadataPatch) -> ApiResult<()> {
    if !patch.is_empty() {
        store::patch_metadata(conn, guid, &patch.labels, &patch.annotations).await?;
    }
    Ok(())
}

/// A parent resource a request body names (the space of a new route, the org of a new
/// role …), already filtered by what the caller may see. As CF: a caller without global
/// powers who cannot see it is refused (403: the right is checked first); an admin naming
/// one that does not exist gets CF's 422 `message`.
pub fn named_parent<T>(visible: Option<T>, ctx: &Ctx, message: impl FnOnce() -> String) -> ApiResult<T> {
    match visible {
        Some(t) => Ok(t),
        None if !ctx.viewer.is_admin() => Err(crate::ApiError::NotAuthorized),
        None => Err(crate::ApiError::Unprocessable(message())),
    }
}

/// A name must be 1..=255 characters (CF's rule for org, space and app names).
pub fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(crate::ApiError::Unprocessable("Name can't be blank".into()));
    }
    if name.chars().count() > 255 {
        return Err(crate::ApiError::Unprocessable("Name is too long (maximum is 255 characters)".into()));
    }
    Ok(())
}

pub async fn seed(store: &store::Store, config: &ApiConfig) -> Result<(), store::Error> {
    let mut tx = store.begin().await?;
    quotas::seed(&mut tx).await?;
    domains::seed(&mut tx, &config.app_domain).await?;
    stacks::seed(&mut tx).await?;
    feature_flags::seed(&mut tx).await?;
    tx.commit().await
}

/// 202 with a JSON body (CF answers a scale this way).
pub fn accepted_with(v: Value) -> Response {
    (StatusCode::ACCEPTED, Json(v)).into_response()
}
