//! `hearth routes`, `create-route`, `delete-route`, `map-route` and `unmap-route`:
//! routes are found by domain, host and path as cf finds them (empty host and path
//! match only empty ones), created in the targeted space, and mapped to an app's `web`
//! process through destinations.

use anyhow::{Result, anyhow, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::commands::apps::{doing, find_app};
use crate::output::Ui;
use crate::output::table::render;
use crate::prompt;
use crate::resources::{guid, name, targeted_space, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// Print the routes as JSON
    #[arg(long)]
    pub json: bool,
}

/// A route by domain, host and path.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The route's domain
    pub domain: String,
    /// The host name in front of the domain
    #[arg(long, short = 'n')]
    pub hostname: Option<String>,
    /// A path the route is limited to (e.g. /api)
    #[arg(long)]
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteRouteArgs {
    #[command(flatten)]
    pub route: RouteArgs,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct MapRouteArgs {
    /// The app's name
    pub app: String,
    #[command(flatten)]
    pub route: RouteArgs,
}

impl RouteArgs {
    fn host(&self) -> &str {
        self.hostname.as_deref().unwrap_or("")
    }

    /// The path with its leading `/` (cf adds one), or "".
    fn path(&self) -> String {
        match self.path.as_deref() {
            None | Some("") => String::new(),
            Some(p) if p.starts_with('/') => p.to_owned(),
            Some(p) => format!("/{p}"),
        }
    }

    /// `host.domain/path` as people read it.
    pub fn describe(&self) -> String {
        let host = self.host();
        let prefix = if host.is_empty() { String::new() } else { format!("{host}.") };
        format!("{prefix}{}{}", self.domain, self.path())
    }
}

/// The domain called `domain_name`, or an error saying how to list domains.
pub async fn find_domain(session: &mut Session, domain_name: &str) -> Result<Value> {
    let path = with_query("/v3/domains", &[("names", domain_name), ("per_page", "1"), ("page", "1")])?;
    let page = session.get(&path).await?;
    page["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|d| name(d) == domain_name).cloned())
        .ok_or_else(|| anyhow!("Domain '{domain_name}' not found."))
}

async fn lookup_route(session: &mut Session, domain: &Value, args: &RouteArgs) -> Result<Option<Value>> {
    let path_text = args.path();
    let path = with_query(
        "/v3/routes",
        &[("domain_guids", guid(domain)), ("hosts", args.host()), ("paths", path_text.as_str())],
    )?;
    let routes = session.list(&path).await?;
    Ok(routes
        .into_iter()
        .find(|r| r["host"].as_str().unwrap_or("") == args.host() && r["path"].as_str().unwrap_or("") == path_text))
}

async fn create(session: &mut Session, domain: &Value, args: &RouteArgs) -> Result<Value> {
    let space = targeted_space(session)?;
    let mut body =
        json!({"relationships": {"space": {"data": {"guid": space.guid}}, "domain": {"data": {"guid": guid(domain)}}}});
    if !args.host().is_empty() {
        body["host"] = args.host().into();
    }
    if !args.path().is_empty() {
        body["path"] = args.path().into();
    }
    session.post("/v3/routes", &body).await
}

pub async fn routes(session: &mut Session, args: RoutesArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let space = targeted_space(session)?;
    ui.say(doing(session, "Getting routes"));
    ui.say("");
    let routes =
        session.list(&with_query("/v3/routes", &[("space_guids", space.guid.as_str()), ("per_page", "5000")])?).await?;
    if routes.is_empty() {
        ui.say("No routes found.");
        return ui.json(&json!([]));
    }
    let app_guids: Vec<String> = routes
        .iter()
        .flat_map(|r| r["destinations"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d.pointer("/app/guid").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let apps = if app_guids.is_empty() {
        Vec::new()
    } else {
        session.list(&with_query("/v3/apps", &[("guids", app_guids.join(",").as_str())])?).await?
    };
    let app_name = |g: &str| apps.iter().find(|a| guid(a) == g).map(|a| name(a).to_owned()).unwrap_or_default();
    let mut rows = vec![["space", "host", "domain", "path", "apps"].map(String::from).to_vec()];
    for route in &routes {
        let host = route["host"].as_str().unwrap_or_default();
        let url = route["url"].as_str().unwrap_or_default();
        let path = route["path"].as_str().unwrap_or_default();
        let domain = url.strip_prefix(&format!("{host}.")).filter(|_| !host.is_empty()).unwrap_or(url);
        let domain = domain.strip_suffix(path).unwrap_or(domain);
        let names: Vec<String> = route["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.pointer("/app/guid").and_then(Value::as_str))
            .map(app_name)
            .collect();
        rows.push(vec![space.name.clone(), host.to_owned(), domain.to_owned(), path.to_owned(), names.join(", ")]);
    }
    ui.print(render(&rows));
    ui.json(&Value::Array(routes))
}

pub async fn create_route(session: &mut Session, args: RouteArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    ui.say(doing(session, &format!("Creating route {}", args.describe())));
    let domain = find_domain(session, &args.domain).await?;
    match create(session, &domain, &args).await {
        Ok(_) => {}
        Err(e)
            if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 422 && a.detail.contains("already exists")) =>
        {
            ui.warn(format!("Route {} already exists.", args.describe()));
        }
        Err(e) => return Err(e),
    }
    ui.ok();
    Ok(())
}

pub async fn delete_route(session: &mut Session, args: DeleteRouteArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    let route_args = &args.route;
    if !args.force && !prompt::confirm(&format!("Really delete the route {}?", route_args.describe()))? {
        ui.say("Delete cancelled");
        return Ok(());
    }
    ui.say(doing(session, &format!("Deleting route {}", route_args.describe())));
    let domain = find_domain(session, &route_args.domain).await?;
    let Some(route) = lookup_route(session, &domain, route_args).await? else {
        ui.warn(format!(
            "Unable to delete. Route with host '{}', domain '{}' and path '{}' not found.",
            route_args.host(),
            route_args.domain,
            route_args.path()
        ));
        ui.ok();
        return Ok(());
    };
    session.delete_and_wait(&format!("/v3/routes/{}", guid(&route))).await?;
    ui.ok();
    Ok(())
}

pub async fn map_route(session: &mut Session, args: MapRouteArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    ui.say(doing(session, &format!("Mapping route {} to app {}", args.route.describe(), args.app)));
    let domain = find_domain(session, &args.route.domain).await?;
    let app = find_app(session, &args.app).await?;
    let route = match lookup_route(session, &domain, &args.route).await? {
        Some(route) => route,
        None => create(session, &domain, &args.route).await?,
    };
    let app_guid = guid(&app);
    let mapped = route["destinations"].as_array().into_iter().flatten().any(|d| {
        d.pointer("/app/guid").and_then(Value::as_str) == Some(app_guid)
            && d.pointer("/app/process/type").and_then(Value::as_str).unwrap_or("web") == "web"
    });
    if mapped {
        ui.say(format!("App '{}' is already mapped to route '{}'.", args.app, args.route.describe()));
    } else {
        let body = json!({"destinations": [{"app": {"guid": app_guid}}]});
        session.request(Method::POST, &format!("/v3/routes/{}/destinations", guid(&route)), Some(&body)).await?;
    }
    ui.ok();
    Ok(())
}

pub async fn unmap_route(session: &mut Session, args: MapRouteArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    ui.say(doing(session, &format!("Removing route {} from app {}", args.route.describe(), args.app)));
    let domain = find_domain(session, &args.route.domain).await?;
    let app = find_app(session, &args.app).await?;
    let Some(route) = lookup_route(session, &domain, &args.route).await? else {
        bail!(
            "Route with host '{}', domain '{}', and path '{}' not found.",
            args.route.host(),
            args.route.domain,
            args.route.path()
        );
    };
    let app_guid = guid(&app);
    let destination = route["destinations"].as_array().into_iter().flatten().find(|d| {
        d.pointer("/app/guid").and_then(Value::as_str) == Some(app_guid)
            && d.pointer("/app/process/type").and_then(Value::as_str).unwrap_or("web") == "web"
    });
    if let Some(destination) = destination {
        let path = format!("/v3/routes/{}/destinations/{}", guid(&route), guid(destination));
        session.request(Method::DELETE, &path, None).await?;
    }
    ui.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_read_like_urls() {
        let args = RouteArgs { domain: "apps.test".into(), hostname: Some("web".into()), path: Some("api".into()) };
        assert_eq!(args.describe(), "web.apps.test/api");
        assert_eq!(args.path(), "/api");
        let bare = RouteArgs { domain: "apps.test".into(), hostname: None, path: None };
        assert_eq!(bare.describe(), "apps.test");
        assert_eq!(bare.host(), "");
    }
}
