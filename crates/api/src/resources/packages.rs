//! Packages: an app's source — a docker image reference (with optional registry
//! credentials), or bits (a zip in the blobstore). A docker package is READY at once; a
//! bits package waits for its upload.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_blobstore::Namespace;
use hearth_store::{self as store, App, Cond, Conn, Metadata, Package};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, apply_metadata, audit, created, metadata_of, ok, spawn_job};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

/// The longest image reference accepted (a registry's own limit is about this).
const MAX_IMAGE_LEN: usize = 4096;

pub fn render(ctx: &Ctx, p: &Package, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/packages/{}", p.guid);
    let data = match p.kind.as_str() {
        "docker" => json!({
            "image": p.data["image"],
            "username": p.data["username"],
            "password": p.docker_password.as_ref().map(|_| "***"),
        }),
        _ => json!({
            "checksum": {"type": "sha256", "value": p.sha256},
            "error": p.error,
        }),
    };
    let mut links = json!({
        "self": render::link(ctx, &path),
        "app": render::link(ctx, &format!("/v3/apps/{}", p.app_guid)),
    });
    if p.kind == "bits" {
        links["upload"] = json!({"href": ctx.url(&format!("{path}/upload")), "method": "POST"});
        links["download"] = json!({"href": ctx.url(&format!("{path}/download")), "method": "GET"});
    }
    json!({
        "guid": p.guid,
        "type": p.kind,
        "data": data,
        "state": p.state,
        "created_at": render::time(&p.created_at),
        "updated_at": render::time(&p.updated_at),
        "relationships": {"app": render::rel(Some(&p.app_guid))},
        "metadata": render::metadata(md),
        "links": links,
    })
}

/// The package and its app, if the caller may see them.
pub async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(Package, App)> {
    super::app_children::find_visible(conn, ctx, guid).await
}

/// `POST /v3/packages`: a new package, or with `?source_guid=` a copy of one for another app.
pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    match super::app_children::copy_source(q.as_deref())? {
        None => create_new(state, ctx, body).await,
        Some(source) => copy(state, ctx, &source, body).await,
    }
}

/// A copy of a package for another app of the same lifecycle: a docker package is READY at
/// once; a bits package is COPYING until its bits (content-addressed, so shared) are
/// confirmed in the blobstore, then READY.
async fn copy(state: ApiState, ctx: Ctx, source: &str, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["relationships"])?;
    body.check_relationships(&["app"])?;
    let app_guid = body.relationship_guid("app")?;
    let mut tx = state.store.begin().await?;
    // As CF checks a copy: the destination app, then the source package, each readable
    // (not by a space supporter's role alone: 422) and writable (403) by the caller.
    let app: Option<App> = store::get(&mut tx, &app_guid).await?;
    let app = app
        .filter(|a| ctx.viewer.can_read_space_beyond_support(&a.space_guid))
        .ok_or_else(|| ApiError::Unprocessable("App must exist and you must have access to it.".into()))?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let src: Option<Package> = store::get(&mut tx, source).await?;
    let src_app: Option<App> = match &src {
        Some(p) => store::get(&mut tx, &p.app_guid).await?,
        None => None,
    };
    let (src, src_space) = match (src, src_app) {
        (Some(p), Some(a)) if ctx.viewer.can_read_space_beyond_support(&a.space_guid) => (p, a.space_guid),
        _ => return Err(ApiError::Unprocessable("Source package must exist and you must have access to it.".into())),
    };
    if !ctx.viewer.can_develop_space(&src_space) {
        return Err(ApiError::NotAuthorized);
    }
    if (src.kind == "docker") != (app.lifecycle_type == "docker") {
        return Err(ApiError::Unprocessable(format!(
            "Cannot copy a {} package to an app with the {} lifecycle.",
            src.kind, app.lifecycle_type
        )));
    }
    if src.state != "READY" {
        return Err(ApiError::Unprocessable(format!("Only a READY package can be copied; it is {}", src.state)));
    }
    let now = store::now();
    let package = Package {
        guid: store::new_guid(),
        app_guid: app.guid.clone(),
        state: if src.kind == "docker" { "READY" } else { "COPYING" }.into(),
        error: None,
        created_at: now.clone(),
        updated_at: now,
        ..src.clone()
    };
    store::insert(&mut tx, &package).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.package.create",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"package_guid": package.guid, "request": {"source_package_guid": src.guid}}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    tx.commit().await?;
    if package.state == "COPYING" {
        let (st, guid, key) = (state.clone(), package.guid.clone(), src.blob_key.clone());
        tokio::spawn(async move {
            let present = match &key {
                Some(k) => st.blobs.exists(Namespace::Packages, k).await.unwrap_or(false),
                None => false,
            };
            if let Err(e) = finish_copy(&st, &guid, present).await {
                tracing::warn!(package = %guid, error = ?e, "recording a package copy failed");
            }
        });
    }
    Ok(created(render(&ctx, &package, None)))
}

async fn finish_copy(state: &ApiState, guid: &str, present: bool) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let current: Option<Package> = store::get(&mut tx, guid).await?;
    let Some(mut p) = current.filter(|p| p.state == "COPYING") else { return Ok(()) };
    if present {
        p.state = "READY".into();
    } else {
        p.state = "FAILED".into();
        p.error = Some("The source package's bits are gone from the blobstore".into());
    }
    p.updated_at = store::now();
    store::update(&mut tx, &p).await?;
    tx.commit().await?;
    Ok(())
}

async fn create_new(state: ApiState, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["type", "data", "relationships", "metadata"])?;
    body.check_relationships(&["app"])?;
    let kind = body.req_str("type")?;
    let app_guid = body.relationship_guid("app")?;
    let metadata = body.metadata()?;
    let (data, password) = match kind.as_str() {
        "docker" => {
            let d = body
                .sub("data", &["image", "username", "password"])?
                .ok_or_else(|| ApiError::Unprocessable("Data Image required".into()))?;
            let image = d.req_str("image").map_err(|_| ApiError::Unprocessable("Data Image required".into()))?;
            if image.is_empty() || image.len() > MAX_IMAGE_LEN || image.chars().any(char::is_whitespace) {
                return Err(ApiError::Unprocessable(format!("Data Image '{image}' is not a valid image reference")));
            }
            let username = d.opt_str("username")?.filter(|u| !u.is_empty());
            let password = d.opt_str("password")?.filter(|p| !p.is_empty());
            if username.is_some() != password.is_some() {
                return Err(ApiError::Unprocessable(
                    "Data Docker credentials need both a username and a password".into(),
                ));
            }
            (json!({"image": image, "username": username}), password)
        }
        "bits" => {
            if body.raw("data").is_some_and(|d| d.as_object().is_none_or(|o| !o.is_empty())) {
                return Err(ApiError::Unprocessable("Data must be empty if provided for bits packages".into()));
            }
            (json!({}), None)
        }
        _ => return Err(ApiError::Unprocessable("Type must be one of 'bits', 'docker'".into())),
    };
    let mut tx = state.store.begin().await?;
    let app: Option<App> = store::get(&mut tx, &app_guid).await?;
    let app = app
        .filter(|a| ctx.viewer.can_read_space(&a.space_guid))
        .ok_or_else(|| ApiError::Unprocessable("App must exist and you must have access to it.".into()))?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if (kind == "docker") != (app.lifecycle_type == "docker") {
        return Err(ApiError::Unprocessable(format!(
            "Cannot create a {kind} package for an app with the {} lifecycle.",
            app.lifecycle_type
        )));
    }
    let now = store::now();
    let package = Package {
        guid: store::new_guid(),
        app_guid: app.guid.clone(),
        kind: kind.clone(),
        state: if kind == "docker" { "READY" } else { "AWAITING_UPLOAD" }.into(),
        data,
        docker_password: password,
        blob_key: None,
        sha256: None,
        size_bytes: None,
        error: None,
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &package).await?;
    apply_metadata(&mut tx, &package.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.package.create",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"package_guid": package.guid, "request": {"type": kind}}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    let md = metadata_of(&mut tx, &package.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &package, Some(&md))))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, _) = find_visible(&mut conn, &ctx, &guid).await?;
    let md = metadata_of(&mut conn, &p.guid).await?;
    Ok(ok(render(&ctx, &p, Some(&md))))
}

const RULES: ListRules = ListRules {
    filters: &["guids", "states", "types", "app_guids", "space_guids", "organization_guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at")],
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
    super::app_children::scope::<Package>(ctx, &params, &mut conds);
    params.in_filters(&mut conds, &[("guids", "guid"), ("states", "state"), ("types", "kind")]);
    let mut conn = state.store.conn().await?;
    let page = store::list::<Package>(&mut conn, &params.spec(conds)).await?;
    let guids: Vec<String> = page.items.iter().map(|p| p.guid.clone()).collect();
    let md = store::metadata_for(&mut conn, &guids).await?;
    let resources: Vec<Value> = page.items.iter().map(|p| render(ctx, p, md.get(&p.guid))).collect();
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/packages", vec![]).await
}

pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (path, conds) = super::app_children::app_list(&state, &ctx, &guid, "packages").await?;
    list_with(&state, &ctx, q.as_deref(), &path, conds).await
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let package_guid = p.guid.clone();
    let job = spawn_job(&state, &ctx, "package.delete", "package", &package_guid, async move {
        let mut tx = st.store.begin().await?;
        store::delete::<Package>(&mut tx, &p.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.app.package.delete",
            Target { guid: &app.guid, kind: "app", name: &app.name },
            json!({"package_guid": p.guid}),
            Some(&app.space_guid),
            None,
        )
        .await?;
        tx.commit().await?;
        let blob = p.blob_key.clone().map(|k| (hearth_blobstore::Namespace::Packages, k));
        crate::blob_refs::release(&st, blob.into_iter().collect()).await;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}
