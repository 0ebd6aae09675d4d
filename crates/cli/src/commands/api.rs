//! `hearth api`: show or set the API endpoint.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::output::Ui;
use crate::output::table::render_key_values;
use crate::root::{self, Endpoints};
use crate::session::{NOT_LOGGED_IN, Session};

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The API URL, e.g. https://api.example.com (https:// is assumed when no scheme is given)
    pub url: Option<String>,
    /// Do not check the server's TLS certificate (for self-signed certificates)
    #[arg(long)]
    pub skip_ssl_validation: bool,
    /// Forget the API endpoint, the login and the target
    #[arg(long, conflicts_with = "url")]
    pub unset: bool,
    /// Print the endpoint as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn run(session: &mut Session, args: ApiArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    if args.unset {
        ui.say("Unsetting API endpoint...");
        session.config = Default::default();
        session.save()?;
        ui.ok();
        return ui.json(&json!({ "api": null }));
    }
    let Some(url) = args.url else {
        return show(session, ui);
    };
    let url = root::normalize_api_url(&url);
    ui.say(format!("Setting API endpoint to {url}..."));
    set_api(session, &url, args.skip_ssl_validation).await?;
    ui.ok();
    ui.say("");
    show(session, ui)?;
    ui.say("");
    ui.say(NOT_LOGGED_IN);
    Ok(())
}

/// Discovers the platform at `url` and saves it as the target, forgetting
/// any login and targeted org and space (they belong to the old API).
pub async fn set_api(session: &mut Session, url: &str, skip_ssl_validation: bool) -> Result<Endpoints> {
    session.set_skip_ssl_validation(skip_ssl_validation)?;
    let endpoints = root::discover(session.client(), url).await?;
    session.config.clear_session();
    session.config.api = Some(endpoints.api.clone());
    session.config.api_version = endpoints.api_version.clone();
    session.config.login_url = Some(endpoints.login_url.clone());
    session.config.uaa_url = Some(endpoints.uaa_url.clone());
    session.save()?;
    Ok(endpoints)
}

fn show(session: &Session, ui: Ui) -> Result<()> {
    let Some(api) = session.config.api.clone() else {
        ui.say("No API endpoint set. Use 'hearth api URL' to set one.");
        return ui.json(&json!({ "api": null }));
    };
    let version = session.config.api_version.clone().unwrap_or_default();
    ui.print(render_key_values(&[("API endpoint", api.clone()), ("API version", version.clone())]));
    ui.json(&json!({
        "api": api,
        "api_version": version,
        "skip_ssl_validation": session.config.skip_ssl_validation,
    }))
}
