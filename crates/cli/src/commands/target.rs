//! `hearth target`: show or set the targeted org and space.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::output::Ui;
use crate::output::table::render_key_values;
use crate::resources::{find_org, find_space, targeted, targeted_org, with_query};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The org to target
    #[arg(short = 'o', long = "org")]
    pub org: Option<String>,
    /// The space to target (in the org given with -o, or the targeted org)
    #[arg(short = 's', long = "space")]
    pub space: Option<String>,
    /// Print the target as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(session: &mut Session, args: TargetArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    if let Some(org_name) = &args.org {
        let org = targeted(&find_org(session, org_name).await?);
        session.config.org = Some(org);
        session.config.space = None;
        if args.space.is_none() {
            auto_target_space(session).await?;
        }
    }
    if let Some(space_name) = &args.space {
        let org = targeted_org(session)?;
        let space = find_space(session, &org, space_name).await?;
        session.config.space = Some(targeted(&space));
    }
    session.save()?;
    show(session, ui)
}

/// Targets the org's space when it has exactly one, as the cf CLI does.
pub async fn auto_target_space(session: &mut Session) -> Result<()> {
    let org = targeted_org(session)?;
    let path = with_query("/v3/spaces", &[("organization_guids", org.guid.as_str()), ("order_by", "name")])?;
    let spaces = session.list(&path).await?;
    if let [space] = spaces.as_slice() {
        session.config.space = Some(targeted(space));
    }
    Ok(())
}

/// Prints the API, user, org and space, as `cf target` does.
pub fn show(session: &Session, ui: Ui) -> Result<()> {
    let config = &session.config;
    let org = config
        .org
        .as_ref()
        .map(|o| o.name.clone())
        .unwrap_or_else(|| "No org targeted, use 'hearth target -o ORG'".into());
    let space = match (&config.org, &config.space) {
        (Some(_), Some(s)) => s.name.clone(),
        _ => "No space targeted, use 'hearth target -s SPACE'".into(),
    };
    ui.print(render_key_values(&[
        ("API endpoint", config.api.clone().unwrap_or_default()),
        ("API version", config.api_version.clone().unwrap_or_default()),
        ("user", session.user_name()),
        ("org", org),
        ("space", space),
    ]));
    ui.json(&json!({
        "api": config.api,
        "api_version": config.api_version,
        "user": session.user_name(),
        "org": config.org,
        "space": config.space,
    }))
}
