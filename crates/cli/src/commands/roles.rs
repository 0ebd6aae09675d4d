//! `hearth set-org-role`, `set-space-role`, `unset-org-role` and
//! `unset-space-role`, and the role creation `create-org` and `create-space`
//! share with them.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::output::Ui;
use crate::resources::{find_org, find_space, guid, targeted, with_query};
use crate::roles::Role;
use crate::session::Session;

/// Who gets a role: a user by name and origin (as the cf CLI sends it), or a
/// client by its id (which is its user guid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User { username: String, origin: String },
    Client(String),
}

impl Subject {
    /// The logged-in user, or `None` when logged in as a client.
    pub fn current_user(session: &Session) -> Option<Self> {
        let claims = session.claims();
        if session.config.client_credentials || claims.is_client() {
            return None;
        }
        Some(Subject::User { username: claims.user_name?, origin: claims.origin.unwrap_or_else(|| "uaa".into()) })
    }

    fn from_args(user: &str, origin: &str, client: bool) -> Self {
        if client {
            Subject::Client(user.to_owned())
        } else {
            Subject::User { username: user.to_owned(), origin: origin.to_owned() }
        }
    }

    /// `relationships.user.data` of a role.
    fn relationship(&self) -> Value {
        match self {
            Subject::User { username, origin } => json!({ "username": username, "origin": origin }),
            Subject::Client(id) => json!({ "guid": id }),
        }
    }

    fn name(&self) -> &str {
        match self {
            Subject::User { username, .. } => username,
            Subject::Client(id) => id,
        }
    }
}

#[derive(Debug, Args)]
pub struct OrgRoleArgs {
    /// The username (or client id with --client)
    pub username: String,
    /// The org
    pub org: String,
    /// OrgManager, BillingManager or OrgAuditor
    pub role: String,
    /// The identity provider the user belongs to
    #[arg(long, default_value = "uaa")]
    pub origin: String,
    /// USERNAME is a client id, not a user
    #[arg(long)]
    pub client: bool,
}

#[derive(Debug, Args)]
pub struct SpaceRoleArgs {
    /// The username (or client id with --client)
    pub username: String,
    /// The org the space is in
    pub org: String,
    /// The space
    pub space: String,
    /// SpaceManager, SpaceDeveloper, SpaceAuditor or SpaceSupporter
    pub role: String,
    /// The identity provider the user belongs to
    #[arg(long, default_value = "uaa")]
    pub origin: String,
    /// USERNAME is a client id, not a user
    #[arg(long)]
    pub client: bool,
}

/// Gives `subject` an org role; having it already is fine.
pub async fn create_org_role(session: &mut Session, role: Role, org_guid: &str, subject: &Subject) -> Result<()> {
    let body = json!({
        "type": role.api_type(),
        "relationships": {
            "user": { "data": subject.relationship() },
            "organization": { "data": { "guid": org_guid } },
        },
    });
    create_role(session, &body).await
}

/// Gives `subject` a space role, first making them a member of the org (as
/// the cf CLI does); having either already is fine.
pub async fn create_space_role(
    session: &mut Session,
    role: Role,
    org_guid: &str,
    space_guid: &str,
    subject: &Subject,
) -> Result<()> {
    if matches!(subject, Subject::User { .. }) {
        create_org_role(session, Role::OrgUser, org_guid, subject).await?;
    }
    let body = json!({
        "type": role.api_type(),
        "relationships": {
            "user": { "data": subject.relationship() },
            "space": { "data": { "guid": space_guid } },
        },
    });
    create_role(session, &body).await
}

async fn create_role(session: &mut Session, body: &Value) -> Result<()> {
    match session.post("/v3/roles", body).await {
        Ok(_) => Ok(()),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_already_exists) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn set_org_role(session: &mut Session, args: OrgRoleArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let role = Role::parse_org(&args.role)?;
    let subject = Subject::from_args(&args.username, &args.origin, args.client);
    ui.say(format!(
        "Assigning role {} to user {} in org {} as {}...",
        role.cli_name(),
        subject.name(),
        args.org,
        session.user_name()
    ));
    let org = find_org(session, &args.org).await?;
    create_org_role(session, role, guid(&org), &subject).await.map_err(|e| user_hint(e, &subject))?;
    ui.ok();
    Ok(())
}

pub async fn set_space_role(session: &mut Session, args: SpaceRoleArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let role = Role::parse_space(&args.role)?;
    let subject = Subject::from_args(&args.username, &args.origin, args.client);
    ui.say(format!(
        "Assigning role {} to user {} in org {} / space {} as {}...",
        role.cli_name(),
        subject.name(),
        args.org,
        args.space,
        session.user_name()
    ));
    let org = targeted(&find_org(session, &args.org).await?);
    let space = find_space(session, &org, &args.space).await?;
    create_space_role(session, role, &org.guid, guid(&space), &subject).await.map_err(|e| user_hint(e, &subject))?;
    ui.ok();
    Ok(())
}

pub async fn unset_org_role(session: &mut Session, args: OrgRoleArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let role = Role::parse_org(&args.role)?;
    let subject = Subject::from_args(&args.username, &args.origin, args.client);
    ui.say(format!(
        "Removing role {} from user {} in org {} as {}...",
        role.cli_name(),
        subject.name(),
        args.org,
        session.user_name()
    ));
    let org = find_org(session, &args.org).await?;
    let user_guid = user_guid(session, &subject).await?;
    let filter = [("types", role.api_type()), ("user_guids", &user_guid), ("organization_guids", guid(&org))];
    delete_roles(session, &filter).await?;
    ui.ok();
    Ok(())
}

pub async fn unset_space_role(session: &mut Session, args: SpaceRoleArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    let role = Role::parse_space(&args.role)?;
    let subject = Subject::from_args(&args.username, &args.origin, args.client);
    ui.say(format!(
        "Removing role {} from user {} in org {} / space {} as {}...",
        role.cli_name(),
        subject.name(),
        args.org,
        args.space,
        session.user_name()
    ));
    let org = targeted(&find_org(session, &args.org).await?);
    let space = find_space(session, &org, &args.space).await?;
    let user_guid = user_guid(session, &subject).await?;
    let filter = [("types", role.api_type()), ("user_guids", &user_guid), ("space_guids", guid(&space))];
    delete_roles(session, &filter).await?;
    ui.ok();
    Ok(())
}

/// The CF user guid of `subject` (`GET /v3/users?usernames=..&origins=..`).
async fn user_guid(session: &mut Session, subject: &Subject) -> Result<String> {
    let (username, origin) = match subject {
        Subject::Client(id) => return Ok(id.clone()),
        Subject::User { username, origin } => (username, origin),
    };
    let path = with_query("/v3/users", &[("usernames", username), ("origins", origin)])?;
    let users = session.list(&path).await?;
    match users.as_slice() {
        [user] => Ok(guid(user).to_owned()),
        [] => bail!("User '{username}' not found. Check the name, or create it with 'hearth create-user'."),
        _ => bail!("More than one user is called '{username}' in origin '{origin}'; use --origin to choose one."),
    }
}

/// Deletes every role matching `filter`, waiting for each deletion job.
async fn delete_roles(session: &mut Session, filter: &[(&str, &str)]) -> Result<()> {
    let roles = session.list(&with_query("/v3/roles", filter)?).await?;
    for role in &roles {
        session.delete_and_wait(&format!("/v3/roles/{}", guid(role))).await?;
    }
    Ok(())
}

/// Adds what to do next when the user a role was meant for does not exist.
fn user_hint(err: anyhow::Error, subject: &Subject) -> anyhow::Error {
    let unknown_user = err
        .downcast_ref::<ApiError>()
        .is_some_and(|e| e.status == 404 || (e.status == 422 && e.detail.to_ascii_lowercase().contains("user")));
    if unknown_user {
        let name = subject.name().to_owned();
        err.context(format!("Cannot give '{name}' the role. If the user does not exist yet, create it with 'hearth create-user {name} PASSWORD'"))
    } else {
        err
    }
}
