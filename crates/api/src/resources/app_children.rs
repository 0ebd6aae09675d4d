//! What packages, droplets, builds, processes, sidecars and tasks share as children of an app: a child is
//! visible exactly when its app is, and app-scoped lists filter by the app's space and org.

use hearth_store::{
    self as store, App, Build, CcTask, Cond, Conn, Droplet, Package, Process, Record, Sidecar, Value as SqlValue,
};

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::ListParams;

/// A resource that belongs to one app.
pub trait AppChild: Record {
    /// The name in a 404 (`Droplet not found`).
    const NAME: &'static str;
    /// `<table>.app_guid IN (apps of the spaces {})`.
    const IN_SPACES: &'static str;
    /// `<table>.app_guid IN (apps of the orgs {})`.
    const IN_ORGS: &'static str;
    fn app_guid(&self) -> &str;
}

macro_rules! app_child {
    ($ty:ty, $table:literal, $name:literal) => {
        impl AppChild for $ty {
            const NAME: &'static str = $name;
            const IN_SPACES: &'static str =
                concat!($table, ".app_guid IN (SELECT guid FROM apps WHERE space_guid IN ({}))");
            const IN_ORGS: &'static str = concat!(
                $table,
                ".app_guid IN (SELECT a.guid FROM apps a JOIN spaces s ON a.space_guid = s.guid WHERE s.org_guid IN ({}))"
            );
            fn app_guid(&self) -> &str {
                &self.app_guid
            }
        }
    };
}

app_child!(Package, "packages", "Package");
app_child!(Droplet, "droplets", "Droplet");
app_child!(Build, "builds", "Build");
app_child!(Process, "processes", "Process");
app_child!(Sidecar, "sidecars", "Sidecar");
app_child!(CcTask, "tasks", "Task");

/// The child and its app, if the caller may read the app's space; otherwise a 404.
pub async fn find_visible<T: AppChild>(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(T, App)> {
    let child: Option<T> = store::get(conn, guid).await?;
    let child = child.ok_or(ApiError::NotFound(T::NAME))?;
    let app: Option<App> = store::get(conn, child.app_guid()).await?;
    match app {
        Some(a) if ctx.viewer.can_read_space(&a.space_guid) => Ok((child, a)),
        _ => Err(ApiError::NotFound(T::NAME)),
    }
}

/// `GET /v3/apps/:guid/<children>`: the list's path and its condition on the app, once the
/// caller may read the app (else the app's 404).
pub async fn app_list(
    state: &crate::ApiState,
    ctx: &Ctx,
    app_guid: &str,
    children: &str,
) -> ApiResult<(String, Vec<Cond>)> {
    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, ctx, app_guid).await?;
    Ok((format!("/v3/apps/{}/{children}", app.guid), vec![Cond::Eq("app_guid", SqlValue::Text(app.guid))]))
}

/// Only children of apps the caller may read.
pub fn visibility<T: AppChild>(ctx: &Ctx) -> Option<Cond> {
    ctx.viewer.readable_spaces().map(|spaces| Cond::Sub(T::IN_SPACES, spaces))
}

/// The list conditions every app-scoped list shares: visibility, then the `app_guids`,
/// `space_guids` and `organization_guids` filters (those the list's rules allow).
pub fn scope<T: AppChild>(ctx: &Ctx, params: &ListParams, conds: &mut Vec<Cond>) {
    conds.extend(visibility::<T>(ctx));
    params.in_filters(conds, &[("app_guids", "app_guid")]);
    if let Some(v) = params.filter("space_guids") {
        conds.push(Cond::Sub(T::IN_SPACES, v.clone()));
    }
    if let Some(v) = params.filter("organization_guids") {
        conds.push(Cond::Sub(T::IN_ORGS, v.clone()));
    }
}

/// A create's query: none (a new child) or `source_guid=G` (a copy of `G`, as CF's package
/// and droplet copies take it); anything else is CF's bad query parameter error.
pub fn copy_source(query: Option<&str>) -> ApiResult<Option<String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| crate::error::ApiError::BadQueryParameter(e.to_string()))?;
    match pairs.as_slice() {
        [] => Ok(None),
        [(k, source)] if k == "source_guid" => Ok(Some(source.clone())),
        _ => Err(crate::error::ApiError::BadQueryParameter("The only query parameter allowed is source_guid".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_new_or_a_copy_of_one_source() {
        assert_eq!(copy_source(None).unwrap(), None);
        assert_eq!(copy_source(Some("")).unwrap(), None);
        assert_eq!(copy_source(Some("source_guid=abc")).unwrap().as_deref(), Some("abc"));
        for bad in ["source_guid=a&source_guid=b", "app_guid=x", "source_guid=a&x=1"] {
            assert!(copy_source(Some(bad)).is_err(), "{bad}");
        }
    }
}
