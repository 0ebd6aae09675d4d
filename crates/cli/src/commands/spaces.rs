//! `hearth spaces`, `space`, `create-space` and `delete-space`.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::commands::orgs::optional;
use crate::commands::roles::{Subject, create_space_role};
use crate::output::Ui;
use crate::output::table::{render, render_key_values};
use crate::prompt;
use crate::resources::{find_space, guid, lookup_space, name, org_or_targeted, targeted_org, with_query};
use crate::roles::Role;
use crate::session::Session;

#[derive(Debug, Args)]
pub struct SpacesArgs {
    /// Print the V3 space resources as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SpaceArgs {
    /// The space's name (in the targeted org)
    pub name: String,
    /// Print only the space's guid
    #[arg(long)]
    pub guid: bool,
    /// Print the space and its apps as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CreateSpaceArgs {
    /// The new space's name
    pub name: String,
    /// The org to create it in (default: the targeted org)
    #[arg(short = 'o')]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteSpaceArgs {
    /// The space's name
    pub name: String,
    /// The org the space is in (default: the targeted org)
    #[arg(short = 'o')]
    pub org: Option<String>,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

pub async fn spaces(session: &mut Session, args: SpacesArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let org = targeted_org(session)?;
    ui.say(format!("Getting spaces in org {} as {}...", org.name, session.user_name()));
    ui.say("");
    let path = with_query("/v3/spaces", &[("organization_guids", org.guid.as_str()), ("order_by", "name")])?;
    let spaces = session.list(&path).await?;
    if spaces.is_empty() {
        ui.say("No spaces found.");
    } else {
        let mut rows = vec![vec!["name".to_owned()]];
        rows.extend(spaces.iter().map(|s| vec![name(s).to_owned()]));
        ui.print(render(&rows));
    }
    ui.json(&Value::Array(spaces))
}

pub async fn space(session: &mut Session, args: SpaceArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    let org = targeted_org(session)?;
    let space = find_space(session, &org, &args.name).await?;
    if args.guid {
        println!("{}", guid(&space));
        return Ok(());
    }
    ui.say(format!("Getting info for space {} in org {} as {}...", args.name, org.name, session.user_name()));
    ui.say("");
    let path = with_query("/v3/apps", &[("space_guids", guid(&space)), ("order_by", "name")])?;
    let apps = optional(session.list(&path).await)?.unwrap_or_default();
    let app_names = apps.iter().map(|a| name(a).to_owned()).collect::<Vec<_>>().join(", ");
    ui.print(render_key_values(&[
        ("name", name(&space).to_owned()),
        ("guid", guid(&space).to_owned()),
        ("org", org.name.clone()),
        ("apps", app_names),
    ]));
    ui.json(&json!({ "space": space, "apps": apps }))
}

pub async fn create_space(session: &mut Session, args: CreateSpaceArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let org = org_or_targeted(session, args.org.as_deref()).await?;
    let user = session.user_name();
    ui.say(format!("Creating space {} in org {} as {user}...", args.name, org.name));
    let body = json!({
        "name": args.name,
        "relationships": { "organization": { "data": { "guid": org.guid } } },
    });
    let space = match session.post("/v3/spaces", &body).await {
        Ok(space) => space,
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_already_exists) => {
            ui.warn(format!("Space '{}' already exists.", args.name));
            ui.ok();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    ui.ok();
    ui.say("");
    if let Some(subject) = Subject::current_user(session) {
        for role in [Role::SpaceManager, Role::SpaceDeveloper] {
            ui.say(format!(
                "Assigning role {} to user {user} in org {} / space {} as {user}...",
                role.cli_name(),
                org.name,
                args.name
            ));
            create_space_role(session, role, &org.guid, guid(&space), &subject).await?;
            ui.ok();
            ui.say("");
        }
    }
    ui.say(format!("TIP: Use 'hearth target -o \"{}\" -s \"{}\"' to target new space", org.name, args.name));
    Ok(())
}

pub async fn delete_space(session: &mut Session, args: DeleteSpaceArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let org = org_or_targeted(session, args.org.as_deref()).await?;
    if !args.force && !prompt::confirm(&format!("Really delete the space {}?", args.name))? {
        ui.say("Space has not been deleted.");
        return Ok(());
    }
    ui.say(format!("Deleting space {} in org {} as {}...", args.name, org.name, session.user_name()));
    let Some(space) = lookup_space(session, &org, &args.name).await? else {
        ui.warn(format!("Space '{}' does not exist.", args.name));
        ui.ok();
        return Ok(());
    };
    let space_guid = guid(&space).to_owned();
    session.delete_and_wait(&format!("/v3/spaces/{space_guid}")).await?;
    if session.config.space.as_ref().is_some_and(|s| s.guid == space_guid) {
        session.config.space = None;
        session.save()?;
    }
    ui.ok();
    Ok(())
}
