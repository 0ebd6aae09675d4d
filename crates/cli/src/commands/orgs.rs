//! `hearth orgs`, `org`, `create-org` and `delete-org`.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::output::Ui;
use crate::output::table::{render, render_key_values};
use crate::prompt;
use crate::resources::{find_org, guid, lookup_org, name, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct OrgsArgs {
    /// Print the V3 organization resources as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    /// The org's name
    pub name: String,
    /// Print only the org's guid
    #[arg(long)]
    pub guid: bool,
    /// Print the org, its spaces, domains and quota as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CreateOrgArgs {
    /// The new org's name
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DeleteOrgArgs {
    /// The org's name
    pub name: String,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

pub async fn orgs(session: &mut Session, args: OrgsArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    ui.say(format!("Getting orgs as {}...", session.user_name()));
    ui.say("");
    let orgs = session.list("/v3/organizations?order_by=name").await?;
    if orgs.is_empty() {
        ui.say("No orgs found.");
    } else {
        let mut rows = vec![vec!["name".to_owned()]];
        rows.extend(orgs.iter().map(|o| vec![name(o).to_owned()]));
        ui.print(render(&rows));
    }
    ui.json(&Value::Array(orgs))
}

pub async fn org(session: &mut Session, args: OrgArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let org = find_org(session, &args.name).await?;
    if args.guid {
        println!("{}", guid(&org));
        return Ok(());
    }
    ui.say(format!("Getting info for org {} as {}...", args.name, session.user_name()));
    ui.say("");
    let org_guid = guid(&org).to_owned();
    let spaces =
        session.list(&with_query("/v3/spaces", &[("organization_guids", &org_guid), ("order_by", "name")])?).await?;
    let domains = optional(session.list(&format!("/v3/organizations/{org_guid}/domains")).await)?.unwrap_or_default();
    let quota = match org.pointer("/relationships/quota/data/guid").and_then(Value::as_str) {
        Some(quota_guid) => optional(session.get(&format!("/v3/organization_quotas/{quota_guid}")).await)?,
        None => None,
    };
    let names = |items: &[Value]| items.iter().map(|i| name(i).to_owned()).collect::<Vec<_>>().join(", ");
    ui.print(render_key_values(&[
        ("name", name(&org).to_owned()),
        ("guid", org_guid.clone()),
        ("domains", names(&domains)),
        ("quota", quota.as_ref().map(|q| name(q).to_owned()).unwrap_or_default()),
        ("spaces", names(&spaces)),
    ]));
    ui.json(&json!({ "organization": org, "spaces": spaces, "domains": domains, "quota": quota }))
}

/// Treats a 404 as "not there" (an optional part the server may not have).
pub fn optional<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn create_org(session: &mut Session, args: CreateOrgArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let user = session.user_name();
    ui.say(format!("Creating org {} as {user}...", args.name));
    match session.post("/v3/organizations", &json!({ "name": args.name })).await {
        Ok(_) => {}
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_already_exists) => {
            ui.warn(format!("Org '{}' already exists.", args.name));
            ui.ok();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    ui.ok();
    // As in CF, the server makes a non-admin creator the org's manager; admins get no role.
    ui.say("");
    ui.say(format!("TIP: Use 'hearth target -o \"{}\"' to target new org", args.name));
    Ok(())
}

pub async fn delete_org(session: &mut Session, args: DeleteOrgArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    if !args.force
        && !prompt::confirm(&format!(
            "Really delete the org {}, including its spaces, apps, service instances, routes, private domains and space-scoped service brokers?",
            args.name
        ))?
    {
        ui.say("Org has not been deleted.");
        return Ok(());
    }
    ui.say(format!("Deleting org {} as {}...", args.name, session.user_name()));
    let org = match lookup_org(session, &args.name).await? {
        Some(org) => org,
        None => {
            ui.warn(format!("Org '{}' does not exist.", args.name));
            ui.ok();
            return Ok(());
        }
    };
    let org_guid = guid(&org).to_owned();
    session.delete_and_wait(&format!("/v3/organizations/{org_guid}")).await?;
    if session.config.org.as_ref().is_some_and(|o| o.guid == org_guid) {
        session.config.org = None;
        session.config.space = None;
        session.save()?;
    }
    ui.ok();
    Ok(())
}
