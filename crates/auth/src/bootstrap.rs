//! First start: the groups (scopes), the `admin` user, the public `cf` client and the
//! `admin` client, as a fresh UAA deployed for Cloud Foundry has them.

use hearth_store::{self as store, Cond, GroupMember, UaaClient, UaaGroup, UaaUser, Value};

use crate::{Auth, AuthError, password};

/// Groups every new user joins.
pub const DEFAULT_USER_GROUPS: &[&str] = &[
    "openid",
    "cloud_controller.read",
    "cloud_controller.write",
    "cloud_controller_service_permissions.read",
    "password.write",
    "uaa.user",
    "scim.me",
    "profile",
    "roles",
    "user_attributes",
    "uaa.offline_token",
    "oauth.approvals",
    "approvals.me",
];

/// Groups only administrators join.
pub const ADMIN_GROUPS: &[&str] = &[
    "cloud_controller.admin",
    "cloud_controller.admin_read_only",
    "cloud_controller.global_auditor",
    "scim.read",
    "scim.write",
    "uaa.admin",
    "clients.read",
    "clients.write",
    "clients.secret",
    "doppler.firehose",
    "routing.router_groups.read",
    "routing.router_groups.write",
    "network.admin",
    "network.write",
];

/// The scopes the public `cf` client may ask for on a user's behalf.
const CF_CLIENT_SCOPES: &str = "cloud_controller.read,cloud_controller.write,cloud_controller.admin,\
cloud_controller.admin_read_only,cloud_controller.global_auditor,cloud_controller_service_permissions.read,\
openid,uaa.user,uaa.admin,scim.read,scim.write,password.write,doppler.firehose,network.admin,network.write,\
routing.router_groups.read,routing.router_groups.write,profile,roles,user_attributes,uaa.offline_token";

const ADMIN_CLIENT_AUTHORITIES: &str = "clients.read,clients.write,clients.secret,uaa.admin,scim.read,scim.write,\
password.write,cloud_controller.admin,cloud_controller.admin_read_only,doppler.firehose,network.admin,\
routing.router_groups.read,routing.router_groups.write";

/// What the first start needs to know.
pub struct Bootstrap<'a> {
    pub admin_password: &'a str,
    pub admin_client_secret: &'a str,
}

async fn ensure_group(conn: &mut store::Conn, name: &str) -> Result<String, AuthError> {
    let existing: Option<UaaGroup> =
        store::find_one(conn, &[Cond::Eq("display_name", Value::Text(name.into()))]).await?;
    if let Some(g) = existing {
        return Ok(g.guid);
    }
    let now = store::now();
    let group = UaaGroup {
        guid: store::new_guid(),
        display_name: name.into(),
        description: None,
        created_at: now.clone(),
        updated_at: now,
        version: 0,
    };
    store::insert(conn, &group).await?;
    Ok(group.guid)
}

/// Adds a user to groups (creating missing groups).
pub async fn join_groups(conn: &mut store::Conn, user_guid: &str, groups: &[&str]) -> Result<(), AuthError> {
    for name in groups {
        let group_guid = ensure_group(conn, name).await?;
        let member = GroupMember { group_guid, member_guid: user_guid.into() };
        let existing: Option<GroupMember> = store::find_one(
            conn,
            &[
                Cond::Eq("group_guid", Value::Text(member.group_guid.clone())),
                Cond::Eq("member_guid", Value::Text(member.member_guid.clone())),
            ],
        )
        .await?;
        if existing.is_none() {
            store::insert(conn, &member).await?;
        }
    }
    Ok(())
}

/// A new `uaa`-origin user record (not yet stored).
pub fn new_user(username: &str, email: &str, password_hash: Option<String>) -> UaaUser {
    let now = store::now();
    UaaUser {
        guid: store::new_guid(),
        username: username.into(),
        origin: "uaa".into(),
        email: email.into(),
        given_name: None,
        family_name: None,
        password_hash,
        active: true,
        verified: true,
        created_at: now.clone(),
        updated_at: now.clone(),
        password_changed_at: now,
        last_logon_at: None,
        previous_logon_at: None,
        version: 0,
    }
}

impl Auth {
    /// Creates the groups, the admin user and the clients if they do not exist yet.
    /// Answers the admin user's guid and whether it was created now.
    pub async fn bootstrap(&self, b: &Bootstrap<'_>) -> Result<(String, bool), AuthError> {
        let mut tx = self.store.begin().await?;
        for g in DEFAULT_USER_GROUPS.iter().chain(ADMIN_GROUPS) {
            ensure_group(&mut tx, g).await?;
        }
        let existing: Option<UaaUser> = store::find_one(
            &mut tx,
            &[Cond::Eq("username", Value::Text("admin".into())), Cond::Eq("origin", Value::Text("uaa".into()))],
        )
        .await?;
        let (admin_guid, created) = match existing {
            Some(u) => (u.guid, false),
            None => {
                let user = new_user("admin", "admin", Some(password::hash(b.admin_password)?));
                store::insert(&mut tx, &user).await?;
                let mut groups: Vec<&str> = DEFAULT_USER_GROUPS.to_vec();
                groups.extend(ADMIN_GROUPS.iter().filter(|g| {
                    !matches!(**g, "cloud_controller.admin_read_only" | "cloud_controller.global_auditor")
                }));
                join_groups(&mut tx, &user.guid, &groups).await?;
                (user.guid, true)
            }
        };
        let cf: Option<UaaClient> = store::get(&mut tx, "cf").await?;
        if cf.is_none() {
            store::insert(
                &mut tx,
                &UaaClient {
                    client_id: "cf".into(),
                    secret_hash: None,
                    authorized_grant_types: "password,refresh_token".into(),
                    scope: CF_CLIENT_SCOPES.into(),
                    authorities: "uaa.none".into(),
                    access_token_validity: None,
                    refresh_token_validity: None,
                    created_at: store::now(),
                },
            )
            .await?;
        }
        let admin_client: Option<UaaClient> = store::get(&mut tx, "admin").await?;
        if admin_client.is_none() {
            store::insert(
                &mut tx,
                &UaaClient {
                    client_id: "admin".into(),
                    secret_hash: Some(password::hash(b.admin_client_secret)?),
                    authorized_grant_types: "client_credentials".into(),
                    scope: "uaa.none".into(),
                    authorities: ADMIN_CLIENT_AUTHORITIES.into(),
                    access_token_validity: None,
                    refresh_token_validity: None,
                    created_at: store::now(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok((admin_guid, created))
    }
}
