//! `hearth create-user` and `delete-user`: users in UAA and the API.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use crate::api_error::ApiError;
use crate::output::Ui;
use crate::prompt;
use crate::session::Session;
use crate::uaa::{self, Created};

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// The new user's name (also used as their email)
    pub username: String,
    /// The new user's password
    pub password: String,
}

#[derive(Debug, Args)]
pub struct DeleteUserArgs {
    /// The user's name
    pub username: String,
    /// Only the user from this identity provider (e.g. uaa)
    #[arg(long)]
    pub origin: Option<String>,
    /// Delete without asking for confirmation
    #[arg(short = 'f')]
    pub force: bool,
}

pub async fn create_user(session: &mut Session, args: CreateUserArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    ui.say(format!("Creating user {} as {}...", args.username, session.user_name()));
    let id = match uaa::create_user(session, &args.username, &args.password).await.map_err(scim_hint)? {
        Created::New(id) => id,
        Created::AlreadyExisted => {
            ui.warn(format!("User '{}' already exists.", args.username));
            // Make sure the API knows the user too (an earlier run may have stopped halfway).
            match uaa::find_user_ids(session, &args.username, Some("uaa")).await?.pop() {
                Some(id) => id,
                None => {
                    ui.ok();
                    return Ok(());
                }
            }
        }
    };
    match session.post("/v3/users", &json!({ "guid": id })).await {
        Ok(_) => {}
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_already_exists) => {}
        Err(e) => {
            return Err(e.context("The user was created in UAA but the API did not accept it"));
        }
    }
    ui.ok();
    ui.say("");
    ui.say("TIP: Assign roles with 'hearth set-org-role' and 'hearth set-space-role'.");
    Ok(())
}

pub async fn delete_user(session: &mut Session, args: DeleteUserArgs) -> Result<()> {
    let ui = Ui::new(false);
    session.require_login()?;
    if !args.force && !prompt::confirm(&format!("Really delete the user {}?", args.username))? {
        ui.say("User has not been deleted.");
        return Ok(());
    }
    ui.say(format!("Deleting user {} as {}...", args.username, session.user_name()));
    let ids = uaa::find_user_ids(session, &args.username, args.origin.as_deref()).await.map_err(scim_hint)?;
    let id = match ids.as_slice() {
        [] => {
            ui.warn(format!("User '{}' does not exist.", args.username));
            ui.ok();
            return Ok(());
        }
        [id] => id.clone(),
        _ => bail!(
            "More than one user is called '{}' (in different origins); use --origin to choose one.",
            args.username
        ),
    };
    match session.delete_and_wait(&format!("/v3/users/{id}")).await {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(ApiError::is_not_found) => {}
        Err(e) => return Err(e),
    }
    uaa::delete_user(session, &id).await?;
    ui.ok();
    Ok(())
}

/// Explains a refused SCIM call: only admins manage users.
fn scim_hint(err: anyhow::Error) -> anyhow::Error {
    let forbidden = err.downcast_ref::<ApiError>().is_some_and(|e| e.status == 403);
    if forbidden {
        err.context("You are not allowed to manage users. Log in as an admin with 'hearth login'")
    } else {
        err
    }
}
