//! Service instances and bindings, as cf v8 has them: `create-user-provided-service`
//! (`cups`), `update-user-provided-service` (`uups`), `services`, `service`,
//! `bind-service`, `unbind-service` and `delete-service`. Only user-provided instances
//! exist on this platform (no service brokers yet). Credentials are a JSON object given
//! inline or as a file name, as cf takes `-p`.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::commands::apps::{doing, find_app};
use crate::output::Ui;
use crate::output::table::{render, render_key_values};
use crate::prompt;
use crate::resources::{guid, name, targeted_space, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct CreateUpsArgs {
    /// The service instance's name
    pub name: String,
    /// Credentials: a JSON object, or the name of a file holding one
    #[arg(short = 'p')]
    pub credentials: Option<String>,
    /// Tags, comma-separated, that apps can find the instance by in VCAP_SERVICES
    #[arg(short = 't')]
    pub tags: Option<String>,
    /// A syslog drain URL for the bound apps' logs
    #[arg(short = 'l')]
    pub syslog_drain_url: Option<String>,
    /// A route service URL (https) that bound routes' requests go through
    #[arg(short = 'r')]
    pub route_service_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Print the service instances as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service instance's name
    pub name: String,
    /// Print only the guid
    #[arg(long)]
    pub guid: bool,
}

#[derive(Debug, Args)]
pub struct BindArgs {
    /// The app's name
    pub app: String,
    /// The service instance's name
    pub service: String,
    /// A name for the binding (VCAP_SERVICES shows it as the service's `name`)
    #[arg(long)]
    pub binding_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnbindArgs {
    /// The app's name
    pub app: String,
    /// The service instance's name
    pub service: String,
}

#[derive(Debug, Args)]
pub struct DeleteServiceArgs {
    /// The service instance's name
    pub name: String,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

/// `-p` as cf reads it: a JSON object inline, else the name of a file holding one.
pub fn credentials(arg: &str) -> Result<Value> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_owned()
    } else if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    } else {
        bail!(
            "Invalid configuration provided for -p flag. Please provide a valid JSON object or path to a file containing a valid JSON object."
        )
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Ok(Value::Object(o)),
        _ => bail!(
            "Invalid configuration provided for -p flag. Please provide a valid JSON object or path to a file containing a valid JSON object."
        ),
    }
}

/// `-t "a, b"` → `["a", "b"]`.
pub fn tags(arg: &str) -> Vec<String> {
    arg.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

fn fields(args: &CreateUpsArgs) -> Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(p) = &args.credentials {
        body.insert("credentials".into(), credentials(p)?);
    }
    if let Some(t) = &args.tags {
        body.insert("tags".into(), json!(tags(t)));
    }
    if let Some(l) = &args.syslog_drain_url {
        body.insert("syslog_drain_url".into(), json!(l));
    }
    if let Some(r) = &args.route_service_url {
        body.insert("route_service_url".into(), json!(r));
    }
    Ok(body)
}

/// The instance called `si_name` in the targeted space, if there is one.
async fn lookup(session: &mut Session, si_name: &str) -> Result<Option<Value>> {
    let space = targeted_space(session)?;
    let path = with_query("/v3/service_instances", &[("names", si_name), ("space_guids", space.guid.as_str())])?;
    Ok(session.list(&path).await?.into_iter().find(|s| name(s) == si_name))
}

async fn find(session: &mut Session, si_name: &str) -> Result<Value> {
    lookup(session, si_name).await?.ok_or_else(|| anyhow!("Service instance '{si_name}' not found"))
}

pub async fn create_ups(session: &mut Session, args: CreateUpsArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let space = targeted_space(session)?;
    let mut body = fields(&args)?;
    ui.say(doing(session, &format!("Creating user provided service {}", args.name)));
    body.insert("type".into(), json!("user-provided"));
    body.insert("name".into(), json!(args.name));
    body.insert("relationships".into(), json!({"space": {"data": {"guid": space.guid}}}));
    session.post("/v3/service_instances", &Value::Object(body)).await?;
    ui.ok();
    Ok(())
}

pub async fn update_ups(session: &mut Session, args: CreateUpsArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    let body = fields(&args)?;
    ui.say(doing(session, &format!("Updating user provided service {}", args.name)));
    let si = find(session, &args.name).await?;
    if si["type"] != "user-provided" {
        bail!("The service instance '{}' is not user-provided.", args.name);
    }
    if body.is_empty() {
        ui.say("");
        ui.say("No flags specified. No changes were made.");
        ui.ok();
        return Ok(());
    }
    session.patch(&format!("/v3/service_instances/{}", guid(&si)), &Value::Object(body)).await?;
    ui.ok();
    ui.say("");
    ui.say("TIP: Use 'hearth restage' for any bound apps to ensure your env variable changes take effect");
    Ok(())
}

/// Each instance's bound apps' names, by instance guid.
async fn bound_apps(session: &mut Session, instances: &[Value]) -> Result<Vec<(String, Vec<Value>)>> {
    if instances.is_empty() {
        return Ok(Vec::new());
    }
    let guids: Vec<&str> = instances.iter().map(guid).collect();
    let path = with_query(
        "/v3/service_credential_bindings",
        &[("service_instance_guids", guids.join(",").as_str()), ("include", "app"), ("per_page", "5000")],
    )?;
    let (bindings, apps) = session.list_including(&path, "apps").await?;
    Ok(instances
        .iter()
        .map(|si| {
            let rows = bindings
                .iter()
                .filter(|b| {
                    b.pointer("/relationships/service_instance/data/guid").and_then(Value::as_str) == Some(guid(si))
                })
                .map(|b| {
                    let app_guid = b.pointer("/relationships/app/data/guid").and_then(Value::as_str).unwrap_or("");
                    let app = apps.iter().find(|a| guid(a) == app_guid).map(name).unwrap_or("");
                    json!({"app": app, "binding_name": b["name"], "guid": guid(b),
                           "last_operation": b["last_operation"]})
                })
                .collect();
            (guid(si).to_owned(), rows)
        })
        .collect())
}

fn last_operation(v: &Value) -> String {
    let op = &v["last_operation"];
    format!("{} {}", op["type"].as_str().unwrap_or(""), op["state"].as_str().unwrap_or("")).trim().to_owned()
}

pub async fn services(session: &mut Session, args: ServicesArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let space = targeted_space(session)?;
    ui.say(doing(session, "Getting service instances"));
    ui.say("");
    let path = with_query("/v3/service_instances", &[("space_guids", space.guid.as_str()), ("per_page", "5000")])?;
    let instances = session.list(&path).await?;
    if instances.is_empty() {
        ui.say("No service instances found.");
        return ui.json(&json!([]));
    }
    let bound = bound_apps(session, &instances).await?;
    let header = ["name", "offering", "plan", "bound apps", "last operation", "broker", "upgrade available"];
    let mut rows = vec![header.map(String::from).to_vec()];
    let mut out = Vec::new();
    for si in &instances {
        let apps: Vec<&str> = bound
            .iter()
            .find(|(g, _)| g == guid(si))
            .map(|(_, b)| b.iter().filter_map(|x| x["app"].as_str()).collect())
            .unwrap_or_default();
        let offering = if si["type"] == "user-provided" { "user-provided" } else { "" };
        rows.push(vec![
            name(si).to_owned(),
            offering.to_owned(),
            String::new(),
            apps.join(", "),
            last_operation(si),
            String::new(),
            String::new(),
        ]);
        out.push(json!({"name": name(si), "guid": guid(si), "type": si["type"], "tags": si["tags"],
                        "bound_apps": apps, "last_operation": si["last_operation"]}));
    }
    ui.print(render(&rows));
    ui.json(&Value::Array(out))
}

pub async fn service(session: &mut Session, args: ServiceArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    if args.guid {
        let si = find(session, &args.name).await?;
        ui.say(guid(&si));
        return Ok(());
    }
    ui.say(doing(session, &format!("Showing info of service {}", args.name)));
    ui.say("");
    let si = find(session, &args.name).await?;
    let tags: Vec<&str> = si["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let text = |k: &str| si[k].as_str().unwrap_or("").to_owned();
    ui.print(render_key_values(&[
        ("name", name(&si).to_owned()),
        ("guid", guid(&si).to_owned()),
        ("type", text("type")),
        ("tags", tags.join(", ")),
        ("route service url", text("route_service_url")),
        ("syslog drain url", text("syslog_drain_url")),
    ]));
    ui.say("");
    ui.say("Showing status of last operation:");
    ui.print(render_key_values(&[
        ("status", last_operation(&si)),
        ("updated", si["last_operation"]["updated_at"].as_str().unwrap_or("").to_owned()),
    ]));
    ui.say("");
    let bound = bound_apps(session, std::slice::from_ref(&si)).await?;
    let bindings = bound.into_iter().next().map(|(_, b)| b).unwrap_or_default();
    if bindings.is_empty() {
        ui.say("There are no bound apps for this service instance.");
    } else {
        ui.say("Showing bound apps:");
        let mut rows = vec![["name", "binding name", "status", "message"].map(String::from).to_vec()];
        for b in &bindings {
            rows.push(vec![
                b["app"].as_str().unwrap_or("").to_owned(),
                b["binding_name"].as_str().unwrap_or("").to_owned(),
                last_operation(b),
                String::new(),
            ]);
        }
        ui.print(render(&rows));
    }
    Ok(())
}

/// The binding of `app` to `si`, if there is one.
async fn binding_of(session: &mut Session, app: &Value, si: &Value) -> Result<Option<Value>> {
    let path = with_query(
        "/v3/service_credential_bindings",
        &[("app_guids", guid(app)), ("service_instance_guids", guid(si)), ("type", "app")],
    )?;
    Ok(session.list(&path).await?.into_iter().next())
}

pub async fn bind_service(session: &mut Session, args: BindArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    ui.say(doing(session, &format!("Binding service instance {} to app {}", args.service, args.app)));
    let app = find_app(session, &args.app).await?;
    let si = find(session, &args.service).await?;
    if binding_of(session, &app, &si).await?.is_some() {
        ui.say(format!("App {} is already bound to service instance {}.", args.app, args.service));
        ui.ok();
        return Ok(());
    }
    let mut body = json!({
        "type": "app",
        "relationships": {"app": {"data": {"guid": guid(&app)}}, "service_instance": {"data": {"guid": guid(&si)}}},
    });
    if let Some(n) = &args.binding_name {
        body["name"] = json!(n);
    }
    session.post("/v3/service_credential_bindings", &body).await?;
    ui.ok();
    ui.say("");
    ui.say(format!("TIP: Use 'hearth restage {}' to ensure your env variable changes take effect", args.app));
    Ok(())
}

pub async fn unbind_service(session: &mut Session, args: UnbindArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    ui.say(doing(session, &format!("Unbinding app {} from service {}", args.app, args.service)));
    let app = find_app(session, &args.app).await?;
    let si = find(session, &args.service).await?;
    match binding_of(session, &app, &si).await? {
        Some(b) => {
            session.request(Method::DELETE, &format!("/v3/service_credential_bindings/{}", guid(&b)), None).await?;
        }
        None => ui.warn(format!("Binding between {} and {} did not exist", args.service, args.app)),
    }
    ui.ok();
    Ok(())
}

pub async fn delete_service(session: &mut Session, args: DeleteServiceArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    targeted_space(session)?;
    if !args.force && !prompt::confirm(&format!("Really delete the service {}?", args.name))? {
        ui.say("Delete cancelled");
        return Ok(());
    }
    ui.say(doing(session, &format!("Deleting service {}", args.name)));
    match lookup(session, &args.name).await? {
        Some(si) => {
            session.request(Method::DELETE, &format!("/v3/service_instances/{}", guid(&si)), None).await?;
        }
        None => ui.say(format!("Service instance {} did not exist.", args.name)),
    }
    ui.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_a_json_object_inline_or_in_a_file() {
        assert_eq!(credentials(r#"{"uri":"postgres://h/d"}"#).unwrap(), json!({"uri": "postgres://h/d"}));
        assert!(credentials("[1]").is_err());
        assert!(credentials("{not json").is_err());
        assert!(credentials("/no/such/file").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds.json");
        std::fs::write(&file, r#"{"user":"u"}"#).unwrap();
        assert_eq!(credentials(file.to_str().unwrap()).unwrap(), json!({"user": "u"}));
    }

    #[test]
    fn tags_are_comma_separated() {
        assert_eq!(tags("sql, db,,x "), vec!["sql", "db", "x"]);
    }
}
