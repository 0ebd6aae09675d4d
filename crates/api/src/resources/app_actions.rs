//! App actions: start, stop, restart. They set the app's desired state and sync its
//! desired LRPs; the scheduler and the cells do the rest.

use axum::extract::{Path, State};
use axum::response::Response;
use hearth_store::{self as store, Space};
use serde_json::json;

use super::audit_events::Target;
use super::{audit, metadata_of, ok};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::{ApiState, lrps};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Restart,
}

async fn act(state: &ApiState, ctx: &Ctx, guid: &str, action: Action) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let mut app = super::apps::find_visible(&mut tx, ctx, guid).await?;
    if !ctx.viewer.can_operate_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if action != Action::Stop && app.droplet_guid.is_none() {
        return Err(ApiError::Unprocessable("Assign a droplet before starting this app.".into()));
    }
    app.state = if action == Action::Stop { "STOPPED" } else { "STARTED" }.into();
    app.updated_at = store::now();
    store::update(&mut tx, &app).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    let events: &[&str] = match action {
        Action::Start => &["audit.app.start"],
        Action::Stop => &["audit.app.stop"],
        Action::Restart => &["audit.app.stop", "audit.app.start", "audit.app.restart"],
    };
    for event in events {
        audit(
            &mut tx,
            ctx,
            event,
            Target { guid: &app.guid, kind: "app", name: &app.name },
            json!({}),
            Some(&app.space_guid),
            space.as_ref().map(|s| s.org_guid.as_str()),
        )
        .await?;
    }
    let md = metadata_of(&mut tx, &app.guid).await?;
    tx.commit().await?;
    lrps::sync_app(state, &app.guid, action == Action::Restart).await?;
    state.routes_changed.notify_one();
    Ok(ok(super::apps::render(ctx, &app, Some(&md), &super::apps::app_url(ctx, &app))))
}

pub async fn start(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    act(&state, &ctx, &guid, Action::Start).await
}

pub async fn stop(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    act(&state, &ctx, &guid, Action::Stop).await
}

pub async fn restart(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    act(&state, &ctx, &guid, Action::Restart).await
}
