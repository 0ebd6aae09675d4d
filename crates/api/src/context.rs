//! Per-request context: the verified caller (token claims and roles) and the base URL
//! links are built from.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hearth_auth::Claims;
use hearth_auth::tokens::TokenRejection;
use hearth_store::{self as store, Cond, Role, Space, Value};

use crate::ApiState;
use crate::authz::{Global, RoleType, Viewer};
use crate::error::ApiError;

/// An authenticated request.
pub struct Ctx {
    pub viewer: Viewer,
    pub claims: Claims,
    /// `http://host:port` as the client reached us.
    pub base: String,
    /// The request asked for a fresh answer (`Cache-Control: no-cache`, `Pragma: no-cache`).
    pub no_cache: bool,
}

impl Ctx {
    pub fn url(&self, path: &str) -> String {
        let mut url = String::with_capacity(self.base.len() + path.len());
        url.push_str(&self.base);
        url.push_str(path);
        url
    }
}

/// The base URL of a request (no authentication needed).
pub struct BaseUrl(pub String);

impl FromRequestParts<ApiState> for BaseUrl {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        Ok(BaseUrl(hearth_auth::http::request_base_url(&parts.headers, &state.config.external_url)))
    }
}

impl FromRequestParts<ApiState> for Ctx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let base = hearth_auth::http::request_base_url(&parts.headers, &state.config.external_url);
        if parts.headers.get(axum::http::header::AUTHORIZATION).is_none() {
            return Err(ApiError::NotAuthenticated);
        }
        let token = hearth_auth::http::bearer_token(&parts.headers).ok_or(ApiError::InvalidAuthToken)?;
        let claims = state.auth.verify_access_token(token).await.map_err(|r| match r {
            TokenRejection::Invalid | TokenRejection::Expired => ApiError::InvalidAuthToken,
        })?;
        let viewer = load_viewer(state, &claims).await?;
        Ok(Ctx { viewer, claims, base, no_cache: asks_for_fresh(&parts.headers) })
    }
}

/// `Cache-Control: no-cache` (or `no-store`, or `max-age=0`) or `Pragma: no-cache`.
fn asks_for_fresh(headers: &axum::http::HeaderMap) -> bool {
    let says = |name, what: &[&str]| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|d| what.iter().any(|w| d.trim().eq_ignore_ascii_case(w))))
    };
    says(axum::http::header::CACHE_CONTROL, &["no-cache", "no-store", "max-age=0"])
        || says(axum::http::header::PRAGMA, &["no-cache"])
}

pub(crate) async fn load_viewer(state: &ApiState, claims: &Claims) -> Result<Viewer, ApiError> {
    let global = if claims.has_scope("cloud_controller.admin") {
        Global::Admin
    } else if claims.has_scope("cloud_controller.admin_read_only") {
        Global::AdminReadOnly
    } else if claims.has_scope("cloud_controller.global_auditor") {
        Global::GlobalAuditor
    } else {
        Global::None
    };
    let mut viewer = Viewer {
        guid: claims.actor_guid().to_string(),
        name: claims.actor_name().to_string(),
        global,
        can_read: claims.has_scope("cloud_controller.read") || global != Global::None,
        can_write: claims.has_scope("cloud_controller.write") || global == Global::Admin,
        org_roles: BTreeMap::new(),
        space_roles: BTreeMap::new(),
        managed_org_spaces: BTreeSet::new(),
    };
    if global != Global::None {
        return Ok(viewer);
    }
    let mut conn = state.store.conn().await?;
    let roles: Vec<Role> =
        store::find_all(&mut conn, vec![Cond::Eq("user_guid", Value::Text(viewer.guid.clone()))]).await?;
    let mut space_guids = Vec::new();
    for role in &roles {
        let Some(kind) = RoleType::parse(&role.role_type) else { continue };
        match (&role.org_guid, &role.space_guid) {
            (Some(org), None) => {
                viewer.org_roles.entry(org.clone()).or_default().insert(kind);
            }
            (_, Some(space)) => space_guids.push((space.clone(), kind)),
            (None, None) => {}
        }
    }
    if !space_guids.is_empty() {
        let spaces: Vec<Space> =
            store::find_all(&mut conn, vec![Cond::In("guid", space_guids.iter().map(|(s, _)| s.clone()).collect())])
                .await?;
        let org_of: BTreeMap<&str, &str> = spaces.iter().map(|s| (s.guid.as_str(), s.org_guid.as_str())).collect();
        for (space, kind) in space_guids {
            if let Some(org) = org_of.get(space.as_str()) {
                viewer
                    .space_roles
                    .entry(space.clone())
                    .or_insert_with(|| (org.to_string(), BTreeSet::new()))
                    .1
                    .insert(kind);
            }
        }
    }
    let managed: Vec<String> = viewer
        .org_roles
        .iter()
        .filter(|(_, r)| r.contains(&RoleType::OrganizationManager))
        .map(|(o, _)| o.clone())
        .collect();
    if !managed.is_empty() {
        viewer.managed_org_spaces = store::strings(
            &mut conn,
            &in_sql("SELECT guid FROM spaces WHERE org_guid IN", managed.len()),
            texts(&managed),
        )
        .await?
        .into_iter()
        .collect();
    }
    Ok(viewer)
}

/// `PREFIX ($1, $2, …)` for `n` values.
pub fn in_sql(prefix: &str, n: usize) -> String {
    let phs: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!("{prefix} ({})", phs.join(", "))
}

pub fn texts(values: &[String]) -> Vec<Value> {
    values.iter().map(|v| Value::Text(v.clone())).collect()
}
