//! Route destinations (route mappings): which app process, on which port, a route sends
//! its traffic to. `cf map-route`, `cf unmap-route` and manifests' `routes` end here; the
//! router's table is built from them and the instances the scheduler runs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, App, Cond, Conn, Domain, Route, RouteMapping, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{audit, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::{ApiState, lrps, render};

/// A mapping with no port given: the process's default (8080, or an image's first exposed port).
pub const DEFAULT_APP_PORT: i64 = -1;

/// The port a mapping sends to, as rendered (the default shows as 8080).
pub fn shown_port(m: &RouteMapping) -> i64 {
    if m.app_port == DEFAULT_APP_PORT { i64::from(lrps::DEFAULT_PORT) } else { m.app_port }
}

pub fn render(m: &RouteMapping) -> Value {
    json!({
        "guid": m.guid,
        "app": {"guid": m.app_guid, "process": {"type": m.process_type}},
        "weight": m.weight,
        "port": shown_port(m),
        "protocol": m.protocol,
        "created_at": render::time(&m.created_at),
        "updated_at": render::time(&m.updated_at),
    })
}

fn list_json(ctx: &Ctx, route_guid: &str, mappings: &[RouteMapping]) -> Value {
    let path = format!("/v3/routes/{route_guid}");
    json!({
        "destinations": mappings.iter().map(render).collect::<Vec<_>>(),
        "links": {"self": render::link(ctx, &format!("{path}/destinations")), "route": render::link(ctx, &path)},
    })
}

async fn mappings_of(conn: &mut Conn, route_guid: &str) -> ApiResult<Vec<RouteMapping>> {
    Ok(store::find_all(conn, vec![Cond::Eq("route_guid", SqlValue::Text(route_guid.into()))]).await?)
}

/// The URLs (`host.domain/path`) of the routes mapped to an app, for `VCAP_APPLICATION`.
pub async fn app_uris(conn: &mut Conn, app_guid: &str) -> ApiResult<Vec<String>> {
    let routes: Vec<Route> = store::find_all(
        conn,
        vec![Cond::Sub(
            "routes.guid IN (SELECT route_guid FROM route_mappings WHERE app_guid IN ({}))",
            vec![app_guid.into()],
        )],
    )
    .await?;
    let domain_guids: Vec<String> = routes.iter().map(|r| r.domain_guid.clone()).collect();
    let domains: Vec<Domain> = store::find_all(conn, vec![Cond::In("guid", domain_guids)]).await?;
    let mut uris: Vec<String> = routes
        .iter()
        .filter_map(|r| domains.iter().find(|d| d.guid == r.domain_guid).map(|d| super::routes::url(r, &d.name)))
        .collect();
    uris.sort();
    Ok(uris)
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let r = super::routes::find_visible(&mut conn, &ctx, &guid).await?;
    let mappings = mappings_of(&mut conn, &r.guid).await?;
    Ok(ok(list_json(&ctx, &r.guid, &mappings)))
}

/// One destination of a request body, checked.
struct Wanted {
    app_guid: String,
    process_type: String,
    port: i64,
    protocol: String,
}

fn parse_destinations(bytes: &[u8]) -> ApiResult<Vec<Wanted>> {
    let body = Body::parse(bytes, &["destinations"])?;
    let Some(Value::Array(items)) = body.raw("destinations") else {
        return Err(ApiError::Unprocessable("Destinations must be an array".into()));
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(obj) = item else {
                return Err(ApiError::Unprocessable("Destinations must be an array of objects".into()));
            };
            let d = Body::from_map(obj.clone(), &["app", "port", "protocol", "weight"])?;
            let app = d
                .sub("app", &["guid", "process"])?
                .ok_or_else(|| ApiError::Unprocessable("Destinations must have an app".into()))?;
            let app_guid =
                app.req_str("guid").map_err(|_| ApiError::Unprocessable("App guid must be a string".into()))?;
            let process_type = match app.sub("process", &["type"])? {
                Some(p) => p.req_str("type")?,
                None => "web".into(),
            };
            let port = match d.opt_int("port")? {
                Some(Some(p)) if (1..=65535).contains(&p) => p,
                Some(Some(_)) => return Err(ApiError::Unprocessable("Port must be between 1 and 65535".into())),
                _ => DEFAULT_APP_PORT,
            };
            let protocol = d.opt_str("protocol")?.unwrap_or_else(|| "http1".into());
            if !["http1", "http2"].contains(&protocol.as_str()) {
                return Err(ApiError::Unprocessable("Protocol must be 'http1' or 'http2'".into()));
            }
            if d.opt_int("weight")?.flatten().is_some() {
                return Err(ApiError::Unprocessable(
                    "Destinations cannot contain weight (weighted routing is not supported)".into(),
                ));
            }
            Ok(Wanted { app_guid, process_type, port, protocol })
        })
        .collect()
}

/// Adds (`replace` false) or sets (`replace` true) a route's destinations.
async fn change(state: &ApiState, ctx: &Ctx, route_guid: &str, bytes: &[u8], replace: bool) -> ApiResult<Response> {
    let wanted = parse_destinations(bytes)?;
    let mut tx = state.store.begin().await?;
    let r = super::routes::find_visible(&mut tx, ctx, route_guid).await?;
    if !ctx.viewer.can_develop_space(&r.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    for w in &wanted {
        let app: Option<App> = store::get(&mut tx, &w.app_guid).await?;
        match app {
            Some(a) if a.space_guid == r.space_guid => {}
            Some(a) if ctx.viewer.can_read_space(&a.space_guid) => {
                return Err(ApiError::Unprocessable(
                    "Routes cannot be mapped to destinations in different spaces.".into(),
                ));
            }
            _ => {
                return Err(ApiError::Unprocessable(format!(
                    "App(s) with guid(s) \"{}\" do not exist or you do not have access.",
                    w.app_guid
                )));
            }
        }
    }
    let before = mappings_of(&mut tx, &r.guid).await?;
    let same = |m: &RouteMapping, w: &Wanted| {
        m.app_guid == w.app_guid && m.process_type == w.process_type && m.app_port == w.port
    };
    let mut touched: Vec<String> = Vec::new();
    if replace {
        for m in before.iter().filter(|m| !wanted.iter().any(|w| same(m, w))) {
            store::delete::<RouteMapping>(&mut tx, &m.guid).await?;
            touched.push(m.app_guid.clone());
        }
    }
    let now = store::now();
    for w in &wanted {
        if before.iter().any(|m| same(m, w)) {
            continue;
        }
        let m = RouteMapping {
            guid: store::new_guid(),
            route_guid: r.guid.clone(),
            app_guid: w.app_guid.clone(),
            process_type: w.process_type.clone(),
            app_port: w.port,
            weight: None,
            protocol: w.protocol.clone(),
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        store::insert(&mut tx, &m).await?;
        let app: Option<App> = store::get(&mut tx, &m.app_guid).await?;
        if let Some(app) = app {
            audit(
                &mut tx,
                ctx,
                "audit.app.map-route",
                Target { guid: &app.guid, kind: "app", name: &app.name },
                json!({"route_guid": r.guid, "app_port": shown_port(&m), "destination_guid": m.guid,
                       "process_type": m.process_type}),
                Some(&app.space_guid),
                None,
            )
            .await?;
        }
        touched.push(m.app_guid.clone());
    }
    let after = mappings_of(&mut tx, &r.guid).await?;
    tx.commit().await?;
    resync(state, touched).await?;
    Ok(ok(list_json(ctx, &r.guid, &after)))
}

/// After mappings change: the apps' LRPs learn their routes, the router its table.
pub async fn resync(state: &ApiState, mut apps: Vec<String>) -> ApiResult<()> {
    apps.sort();
    apps.dedup();
    for app in apps {
        lrps::sync_app(state, &app, false).await?;
    }
    state.routes_changed.notify_one();
    Ok(())
}

pub async fn insert(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    change(&state, &ctx, &guid, &body, false).await
}

pub async fn replace(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    change(&state, &ctx, &guid, &body, true).await
}

pub async fn delete_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((guid, dest)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let r = super::routes::find_visible(&mut tx, &ctx, &guid).await?;
    let m: Option<RouteMapping> = store::get(&mut tx, &dest).await?;
    let m = m.filter(|m| m.route_guid == r.guid).ok_or(ApiError::NotFound("Destination"))?;
    if !ctx.viewer.can_develop_space(&r.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    store::delete::<RouteMapping>(&mut tx, &m.guid).await?;
    let app: Option<App> = store::get(&mut tx, &m.app_guid).await?;
    if let Some(app) = &app {
        audit(
            &mut tx,
            &ctx,
            "audit.app.unmap-route",
            Target { guid: &app.guid, kind: "app", name: &app.name },
            json!({"route_guid": r.guid, "app_port": shown_port(&m), "destination_guid": m.guid,
                   "process_type": m.process_type}),
            Some(&app.space_guid),
            None,
        )
        .await?;
    }
    tx.commit().await?;
    resync(&state, vec![m.app_guid]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
