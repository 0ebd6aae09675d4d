//! `hearth org-users` and `space-users`: who holds which role.

use std::collections::HashMap;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::output::Ui;
use crate::resources::{find_org, find_space, guid, targeted, with_query};
use crate::roles::{ORG_ROLES, Role, SPACE_ROLES};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct OrgUsersArgs {
    /// The org
    pub org: String,
    /// List every user in the org, whatever their role
    #[arg(short = 'a', long = "all-users")]
    pub all: bool,
    /// Print the V3 roles and users as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SpaceUsersArgs {
    /// The org the space is in
    pub org: String,
    /// The space
    pub space: String,
    /// Print the V3 roles and users as JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn org_users(session: &mut Session, args: OrgUsersArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    ui.say(format!("Getting users in org {} as {}...", args.org, session.user_name()));
    ui.say("");
    let org = find_org(session, &args.org).await?;
    let path = with_query("/v3/roles", &[("organization_guids", guid(&org)), ("include", "user")])?;
    let (roles, users) = session.list_including(&path, "users").await?;
    let users = unique_by_guid(users);
    let shown: &[Role] = if args.all { &[Role::OrgUser] } else { &ORG_ROLES };
    ui.print(render_roles(shown, &roles, &users));
    ui.json(&json!({ "roles": roles, "users": users }))
}

pub async fn space_users(session: &mut Session, args: SpaceUsersArgs) -> Result<()> {
    let ui = Ui::new(args.json);
    session.require_login()?;
    ui.say(format!("Getting users in org {} / space {} as {}...", args.org, args.space, session.user_name()));
    ui.say("");
    let org = targeted(&find_org(session, &args.org).await?);
    let space = find_space(session, &org, &args.space).await?;
    let path = with_query("/v3/roles", &[("space_guids", guid(&space)), ("include", "user")])?;
    let (roles, users) = session.list_including(&path, "users").await?;
    let users = unique_by_guid(users);
    ui.print(render_roles(&SPACE_ROLES, &roles, &users));
    ui.json(&json!({ "roles": roles, "users": users }))
}

/// Included resources repeat across pages; keep each once.
fn unique_by_guid(items: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|i| seen.insert(guid(i).to_owned())).collect()
}

/// One block per role: the heading, then its users as `name (origin)`, sorted.
pub fn render_roles(shown: &[Role], roles: &[Value], users: &[Value]) -> String {
    let by_guid: HashMap<&str, &Value> = users.iter().map(|u| (guid(u), u)).collect();
    let mut out = String::new();
    for (i, role) in shown.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(role.heading());
        out.push('\n');
        let mut names: Vec<String> = roles
            .iter()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some(role.api_type()))
            .filter_map(|r| r.pointer("/relationships/user/data/guid").and_then(Value::as_str))
            .map(|user_guid| display_user(user_guid, by_guid.get(user_guid).copied()))
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            out.push_str(&format!("  No {} found\n", role.heading()));
        }
        for name in names {
            out.push_str(&format!("  {name}\n"));
        }
    }
    out
}

fn display_user(user_guid: &str, user: Option<&Value>) -> String {
    let username = user.and_then(|u| u.get("username")).and_then(Value::as_str);
    let origin = user.and_then(|u| u.get("origin")).and_then(Value::as_str);
    match (username, origin) {
        (Some(name), Some(origin)) => format!("{name} ({origin})"),
        (Some(name), None) => name.to_owned(),
        // Clients have no username; their guid is their client id.
        (None, _) => format!("{user_guid} (client)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_role_blocks_like_cf() {
        let roles = vec![
            json!({"type": "space_developer", "relationships": {"user": {"data": {"guid": "u2"}}}}),
            json!({"type": "space_developer", "relationships": {"user": {"data": {"guid": "u1"}}}}),
            json!({"type": "space_manager", "relationships": {"user": {"data": {"guid": "c1"}}}}),
        ];
        let users = vec![
            json!({"guid": "u1", "username": "bob", "origin": "uaa"}),
            json!({"guid": "u2", "username": "alice", "origin": "uaa"}),
            json!({"guid": "c1", "username": null, "origin": null}),
        ];
        let out = render_roles(&SPACE_ROLES, &roles, &users);
        assert_eq!(
            out,
            "SPACE MANAGER\n  c1 (client)\n\nSPACE DEVELOPER\n  alice (uaa)\n  bob (uaa)\n\n\
             SPACE AUDITOR\n  No SPACE AUDITOR found\n\nSPACE SUPPORTER\n  No SPACE SUPPORTER found\n"
        );
    }
}
