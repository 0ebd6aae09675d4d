//! Who may read which app logs: the log endpoints (`/api/v1/read/:source`, `/v2/read`)
//! ask here. A source is an app guid; its logs are for whoever may see the app (CF's
//! rule: space developers, managers, auditors, supporters, org managers, admins). Every
//! source at once (the firehose) is for admins and `doppler.firehose`/`logs.admin` clients.

use std::future::Future;
use std::pin::Pin;

use hearth_auth::tokens::TokenRejection;
use hearth_logs::{Access, Authorize};
use hearth_store::{self as store, App};

use crate::ApiState;

/// The API's rules as the logs component's [`Authorize`].
pub struct LogAccess(pub ApiState);

impl Authorize for LogAccess {
    fn authorize(&self, token: String, source_id: Option<String>) -> Pin<Box<dyn Future<Output = Access> + Send>> {
        let state = self.0.clone();
        Box::pin(async move { decide(&state, &token, source_id.as_deref()).await })
    }
}

async fn decide(state: &ApiState, token: &str, source_id: Option<&str>) -> Access {
    let token = token.strip_prefix("bearer ").or_else(|| token.strip_prefix("Bearer ")).unwrap_or(token);
    let claims = match state.auth.verify_access_token(token).await {
        Ok(claims) => claims,
        Err(TokenRejection::Invalid | TokenRejection::Expired) => return Access::Unauthenticated,
    };
    let Ok(viewer) = crate::context::load_viewer(state, &claims).await else { return Access::Unauthenticated };
    let firehose = claims.has_scope("doppler.firehose") || claims.has_scope("logs.admin");
    let Some(source) = source_id else {
        return if viewer.reads_all() || firehose { Access::Allowed } else { Access::Forbidden };
    };
    if firehose && viewer.reads_all() {
        return Access::Allowed;
    }
    let Ok(mut conn) = state.store.conn().await else { return Access::Forbidden };
    let app: Option<App> = store::get(&mut conn, source).await.ok().flatten();
    match app {
        Some(app) if viewer.can_read_space(&app.space_guid) => Access::Allowed,
        Some(_) => Access::Forbidden,
        None if viewer.reads_all() => Access::Allowed,
        None => Access::NotFound,
    }
}
