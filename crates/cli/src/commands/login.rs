//! `hearth login`, `auth`, `logout` and `oauth-token`: getting, dropping and
//! showing tokens.

use anyhow::{Result, anyhow, bail};
use clap::Args;
use serde_json::Value;

use crate::api_error::ApiError;
use crate::commands::{api, target};
use crate::output::Ui;
use crate::prompt;
use crate::resources::{find_org, find_space, name, targeted, targeted_org, with_query};
use crate::root::{self, normalize_api_url};
use crate::session::{NO_API, Session};
use crate::uaa::{self, Grant};

/// How many times `login` asks for the password when it prompts for it.
const PASSWORD_ATTEMPTS: usize = 3;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The API endpoint to log in to (default: the one set with 'hearth api')
    #[arg(short = 'a')]
    pub api: Option<String>,
    /// The username (asked for when missing)
    #[arg(short = 'u')]
    pub username: Option<String>,
    /// The password (asked for, without echo, when missing)
    #[arg(short = 'p')]
    pub password: Option<String>,
    /// The org to target
    #[arg(short = 'o')]
    pub org: Option<String>,
    /// The space to target
    #[arg(short = 's')]
    pub space: Option<String>,
    /// Do not check the server's TLS certificate (for self-signed certificates)
    #[arg(long)]
    pub skip_ssl_validation: bool,
}

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The username, or the client id with --client-credentials
    pub username: String,
    /// The password, or the client secret with --client-credentials
    pub password: String,
    /// Authenticate as a client (client_credentials grant) instead of a user
    #[arg(long)]
    pub client_credentials: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {}

#[derive(Debug, Args)]
pub struct OauthTokenArgs {}

pub async fn login(session: &mut Session, args: LoginArgs) -> Result<()> {
    let ui = Ui::new(false);
    let api_url = match (&args.api, &session.config.api) {
        (Some(url), _) => normalize_api_url(url),
        (None, Some(url)) => url.clone(),
        (None, None) if prompt::is_interactive() => normalize_api_url(&prompt::ask("API endpoint")?),
        (None, None) => bail!(NO_API),
    };
    ui.say(format!("API endpoint: {api_url}"));
    ui.say("");
    api::set_api(session, &api_url, args.skip_ssl_validation || session.config.skip_ssl_validation).await?;

    let login_url = session.config.login_url.clone().unwrap_or_default();
    let prompts = root::login_prompts(session.client(), &login_url).await;
    let label = |key: &str, fallback: &str| {
        prompts.iter().find(|(k, _)| k == key).map(|(_, l)| l.clone()).unwrap_or_else(|| fallback.to_owned())
    };
    let username = match args.username {
        Some(u) => u,
        None => prompt::ask(&label("username", "Email"))?,
    };
    let attempts = if args.password.is_some() { 1 } else { PASSWORD_ATTEMPTS };
    let uaa_url = session.uaa_url()?;
    let mut last_error = None;
    for attempt in 1..=attempts {
        let password = match &args.password {
            Some(p) => p.clone(),
            None => prompt::ask_password(&label("password", "Password"))?,
        };
        ui.say("Authenticating...");
        let grant = Grant::Password { username: &username, password: &password };
        match uaa::request_token(session.client(), &uaa_url, grant).await {
            Ok(token) => {
                session.store_tokens(token);
                last_error = None;
                break;
            }
            Err(e) if is_rejected(&e) => {
                if attempt < attempts {
                    ui.warn("Credentials were rejected, please try again.");
                }
                last_error = Some(e);
            }
            Err(e) => return Err(e.context("Unable to authenticate")),
        }
    }
    if let Some(e) = last_error {
        bail!("Unable to authenticate: {e}. Check the username and password, then run 'hearth login' again.");
    }
    session.save()?;
    ui.ok();
    ui.say("");
    show_previous_logon(session, ui).await;

    target_after_login(session, ui, args.org.as_deref(), args.space.as_deref()).await?;
    session.save()?;
    target::show(session, ui)
}

/// True when UAA refused the credentials (as opposed to being unreachable).
fn is_rejected(err: &anyhow::Error) -> bool {
    err.downcast_ref::<ApiError>().is_some_and(|e| matches!(e.status, 400 | 401 | 403))
}

/// Prints UAA's `previous_logon_time` from `/userinfo`, when it offers one.
async fn show_previous_logon(session: &mut Session, ui: Ui) {
    let Ok(info) = uaa::userinfo(session).await else {
        return;
    };
    let millis = info.get("previous_logon_time").and_then(|t| match t {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    });
    if let Some(when) = millis.and_then(uaa::format_logon_time) {
        ui.say(format!("Last login: {when}"));
        ui.say("");
    }
}

/// Targets the org and space given, or the only one there is, or asks.
async fn target_after_login(session: &mut Session, ui: Ui, org: Option<&str>, space: Option<&str>) -> Result<()> {
    let org = match org {
        Some(org_name) => Some(find_org(session, org_name).await?),
        None => pick(session, "/v3/organizations", &[], "Select an org:").await?,
    };
    let Some(org) = org else {
        if space.is_some() {
            bail!("Cannot target a space without an org. Use 'hearth target -o ORG -s SPACE'.");
        }
        return Ok(());
    };
    session.config.org = Some(targeted(&org));
    ui.say(format!("Targeted org {}.", name(&org)));
    ui.say("");
    let org = targeted_org(session)?;
    let space = match space {
        Some(space_name) => Some(find_space(session, &org, space_name).await?),
        None => pick(session, "/v3/spaces", &[("organization_guids", org.guid.as_str())], "Select a space:").await?,
    };
    if let Some(space) = space {
        session.config.space = Some(targeted(&space));
        ui.say(format!("Targeted space {}.", name(&space)));
        ui.say("");
    }
    Ok(())
}

/// The only resource of a list, or the one the user picks when there are
/// several and a terminal to ask on.
async fn pick(session: &mut Session, path: &str, filters: &[(&str, &str)], heading: &str) -> Result<Option<Value>> {
    let mut params = filters.to_vec();
    params.push(("order_by", "name"));
    let mut items = session.list(&with_query(path, &params)?).await?;
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        _ if prompt::is_interactive() => {
            let names: Vec<String> = items.iter().map(|i| name(i).to_owned()).collect();
            Ok(prompt::choose(heading, &names)?.map(|i| items.swap_remove(i)))
        }
        _ => Ok(None),
    }
}

pub async fn auth(session: &mut Session, args: AuthArgs) -> Result<()> {
    let ui = Ui::new(false);
    let api_url = session.api()?;
    let uaa_url = session.uaa_url()?;
    ui.say(format!("API endpoint: {api_url}"));
    ui.say("Authenticating...");
    session.config.clear_session();
    let grant = if args.client_credentials {
        Grant::ClientCredentials { client_id: &args.username, client_secret: &args.password }
    } else {
        Grant::Password { username: &args.username, password: &args.password }
    };
    let token = uaa::request_token(session.client(), &uaa_url, grant).await.map_err(|e| {
        let what = if args.client_credentials { "client id and secret" } else { "username and password" };
        anyhow!("Unable to authenticate: {e}. Check the {what}, then run 'hearth auth' again.")
    })?;
    session.store_tokens(token);
    if args.client_credentials {
        session.config.client_credentials = true;
        session.config.client_id = Some(args.username);
        session.config.client_secret = Some(args.password);
        session.config.refresh_token = None;
    }
    session.save()?;
    ui.ok();
    ui.say("");
    ui.say("Use 'hearth target' to view or set your target org and space.");
    Ok(())
}

pub async fn logout(session: &mut Session, _args: LogoutArgs) -> Result<()> {
    let ui = Ui::new(false);
    let who = if session.config.is_logged_in() { session.user_name() } else { "you".to_owned() };
    ui.say(format!("Logging out {who}..."));
    session.config.clear_session();
    session.save()?;
    ui.ok();
    Ok(())
}

pub async fn oauth_token(session: &mut Session, _args: OauthTokenArgs) -> Result<()> {
    session.require_login()?;
    session.refresh().await?;
    let token = session.config.authorization().ok_or_else(|| anyhow!(crate::session::NOT_LOGGED_IN))?;
    println!("{token}");
    Ok(())
}
