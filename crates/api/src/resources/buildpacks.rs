//! Buildpacks: zips in the blobstore, tried in position order by staging when an app
//! names none. Admins create, upload, reorder, lock and delete them; everyone may list.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_blobstore::Namespace;
use hearth_store::{self as store, Buildpack, Cond, Value as SqlValue};
use serde_json::{Value, json};

use super::{created, metadata_of, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::limits::{Limit, blob_error, form_error, save_field};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, b: &Buildpack, md: Option<&hearth_store::Metadata>) -> Value {
    let path = format!("/v3/buildpacks/{}", b.guid);
    json!({
        "guid": b.guid,
        "created_at": render::time(&b.created_at),
        "updated_at": render::time(&b.updated_at),
        "name": b.name,
        "state": b.state,
        "filename": b.filename,
        "stack": b.stack,
        "position": b.position,
        "lifecycle": "buildpack",
        "enabled": b.enabled,
        "locked": b.locked,
        "metadata": render::metadata(md),
        "links": {
            "self": render::link(ctx, &path),
            "upload": {"href": ctx.url(&format!("{path}/upload")), "method": "POST"},
        },
    })
}

const RULES: ListRules = ListRules {
    filters: &["names", "stacks"],
    order_by: &[("position", "position"), ("created_at", "created_at"), ("updated_at", "updated_at")],
    default_order: "position",
    includes: &[],
    labels: true,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds = Vec::new();
    params.in_filters(&mut conds, &[("names", "name"), ("stacks", "stack")]);
    let mut conn = state.store.conn().await?;
    let page = store::list::<Buildpack>(&mut conn, &params.spec(conds)).await?;
    let guids: Vec<String> = page.items.iter().map(|b| b.guid.clone()).collect();
    let md = store::metadata_for(&mut conn, &guids).await?;
    let resources: Vec<Value> = page.items.iter().map(|b| render(&ctx, b, md.get(&b.guid))).collect();
    Ok(render::list(&ctx, "/v3/buildpacks", &params, page.total, resources, None))
}

async fn find(conn: &mut hearth_store::Conn, guid: &str) -> ApiResult<Buildpack> {
    let b: Option<Buildpack> = store::get(conn, guid).await?;
    b.ok_or(ApiError::NotFound("Buildpack"))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let b = find(&mut conn, &guid).await?;
    let md = metadata_of(&mut conn, &b.guid).await?;
    Ok(ok(render(&ctx, &b, Some(&md))))
}

/// Puts `b` at `position` (1 = first), shifting the others; positions stay 1..=n.
pub(super) async fn place(conn: &mut hearth_store::Conn, b: &mut Buildpack, position: Option<i64>) -> ApiResult<()> {
    let mut all: Vec<Buildpack> = store::find_all(conn, vec![]).await?;
    all.retain(|o| o.guid != b.guid);
    all.sort_by_key(|o| o.position);
    let at = position.unwrap_or(i64::MAX).clamp(1, all.len() as i64 + 1) as usize;
    for (i, o) in all.iter_mut().enumerate() {
        let want = if i + 1 < at { i as i64 + 1 } else { i as i64 + 2 };
        if o.position != want {
            o.position = want;
            store::update(conn, o).await?;
        }
    }
    b.position = at as i64;
    Ok(())
}

/// Numbers the buildpacks 1..=n in their present order (closes the gap a delete leaves).
async fn renumber(conn: &mut hearth_store::Conn) -> ApiResult<()> {
    let mut all: Vec<Buildpack> = store::find_all(conn, vec![]).await?;
    all.sort_by_key(|o| o.position);
    for (i, o) in all.iter_mut().enumerate() {
        let want = i as i64 + 1;
        if o.position != want {
            o.position = want;
            store::update(conn, o).await?;
        }
    }
    Ok(())
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "stack", "position", "enabled", "locked", "metadata", "lifecycle"])?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let name = body.req_str("name")?;
    if name.is_empty() || name.len() > 250 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::Unprocessable("Name can only contain alphanumeric characters, '-', '_' and '.'".into()));
    }
    let position = match body.opt_int("position")? {
        Some(Some(p)) if p >= 1 => Some(p),
        Some(Some(_)) => return Err(ApiError::Unprocessable("Position must be greater than or equal to 1".into())),
        _ => None,
    };
    let stack = body.opt_str("stack")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let clash: Option<Buildpack> = store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
    if clash.is_some_and(|c| c.stack == stack) {
        return Err(ApiError::Unprocessable(format!(
            "Buildpack with name '{name}' and an unassigned stack already exists"
        )));
    }
    let now = store::now();
    let mut b = Buildpack {
        guid: store::new_guid(),
        name,
        stack,
        position: 0,
        enabled: body.opt_bool("enabled")?.unwrap_or(true),
        locked: body.opt_bool("locked")?.unwrap_or(false),
        state: "AWAITING_UPLOAD".into(),
        filename: None,
        blob_key: None,
        sha256: None,
        created_at: now.clone(),
        updated_at: now,
    };
    place(&mut tx, &mut b, position).await?;
    store::insert(&mut tx, &b).await?;
    super::apply_metadata(&mut tx, &b.guid, &metadata).await?;
    let md = metadata_of(&mut tx, &b.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &b, Some(&md))))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "stack", "position", "enabled", "locked", "metadata"])?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let mut tx = state.store.begin().await?;
    let mut b = find(&mut tx, &guid).await?;
    if let Some(name) = body.opt_str("name")? {
        b.name = name;
    }
    if let Some(Some(p)) = body.opt_int("position")? {
        if p < 1 {
            return Err(ApiError::Unprocessable("Position must be greater than or equal to 1".into()));
        }
        place(&mut tx, &mut b, Some(p)).await?;
    }
    if let Some(e) = body.opt_bool("enabled")? {
        b.enabled = e;
    }
    if let Some(l) = body.opt_bool("locked")? {
        b.locked = l;
    }
    b.updated_at = store::now();
    store::update(&mut tx, &b).await?;
    super::apply_metadata(&mut tx, &b.guid, &body.metadata()?).await?;
    let md = metadata_of(&mut tx, &b.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &b, Some(&md))))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let mut tx = state.store.begin().await?;
    let b = find(&mut tx, &guid).await?;
    store::delete::<Buildpack>(&mut tx, &b.guid).await?;
    renumber(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v3/buildpacks/:guid/upload` (multipart field `bits`, a zip).
pub async fn upload(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    mut form: Multipart,
) -> ApiResult<Response> {
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let mut conn = state.store.conn().await?;
    let b = find(&mut conn, &guid).await?;
    drop(conn);
    if b.locked {
        return Err(ApiError::Unprocessable("The buildpack is locked".into()));
    }
    std::fs::create_dir_all(&state.work_dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    let work = tempfile::TempDir::new_in(&state.work_dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    let path = work.path().join("buildpack.zip");
    let mut filename = None;
    let limits = state.config.limits;
    let bad_form = form_error(Limit::Buildpack, &limits);
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        if field.name() != Some("bits") {
            return Err(ApiError::Unprocessable("A buildpack upload has one field, bits (a zip)".into()));
        }
        filename = field.file_name().map(str::to_string);
        save_field(&mut field, &path, Limit::Buildpack, &limits).await?;
    }
    let Some(filename) = filename.filter(|f| f.ends_with(".zip")) else {
        return Err(ApiError::Unprocessable(
            "Buildpack must be a zip file (the bits field's filename ends in .zip)".into(),
        ));
    };
    // Checked as staging will use it: a zip that extracts safely.
    let check_dir = work.path().join("check");
    let (zip, dir, archive) = (path.clone(), check_dir.clone(), limits.archive(Limit::Buildpack));
    tokio::task::spawn_blocking(move || hearth_blobstore::archive::extract_zip(&zip, &dir, &archive))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match blob_error(e, Limit::Buildpack) {
            ApiError::Unprocessable(why) => ApiError::Unprocessable(format!("The buildpack zip is unusable: {why}")),
            other => other,
        })?;
    let blob =
        state.blobs.put_file(Namespace::Buildpacks, &path).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.store.begin().await?;
    let mut b = find(&mut tx, &guid).await?;
    b.state = "READY".into();
    b.filename = Some(filename);
    b.blob_key = Some(blob.key);
    b.sha256 = Some(blob.sha256);
    b.updated_at = store::now();
    store::update(&mut tx, &b).await?;
    let md = metadata_of(&mut tx, &b.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &b, Some(&md))))
}
