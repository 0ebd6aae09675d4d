//! Roles: a user's place in an org or a space.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, CcUser, Cond, Conn, Org, Role, Space, UaaUser, Value as SqlValue};
use serde_json::{Map, Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::users::ensure_cc_user;
use super::{accepted, audit, created, named_parent, ok, spawn_job};
use crate::authz::RoleType;
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, r: &Role) -> Value {
    let mut links = json!({
        "self": render::link(ctx, &format!("/v3/roles/{}", r.guid)),
        "user": render::link(ctx, &format!("/v3/users/{}", r.user_guid)),
    });
    let (org, space) =
        if r.space_guid.is_some() { (None, r.space_guid.as_deref()) } else { (r.org_guid.as_deref(), None) };
    if let Some(o) = org {
        links["organization"] = render::link(ctx, &format!("/v3/organizations/{o}"));
    }
    if let Some(s) = space {
        links["space"] = render::link(ctx, &format!("/v3/spaces/{s}"));
    }
    json!({
        "guid": r.guid,
        "created_at": render::time(&r.created_at),
        "updated_at": render::time(&r.updated_at),
        "type": r.role_type,
        "relationships": {
            "user": render::rel(Some(&r.user_guid)),
            "organization": render::rel(org),
            "space": render::rel(space),
        },
        "links": links,
    })
}

fn visibility(ctx: &Ctx) -> Option<Cond> {
    let v = &ctx.viewer;
    if v.reads_all() {
        return None;
    }
    // Org roles through the org; space roles only through their space (CF shows org
    // auditors and billing managers organization roles only).
    Some(Cond::Or(vec![
        Cond::All(vec![Cond::Null("space_guid"), Cond::In("org_guid", v.readable_orgs().unwrap_or_default())]),
        Cond::In("space_guid", v.readable_spaces().unwrap_or_default()),
    ]))
}

const RULES: ListRules = ListRules {
    filters: &["guids", "types", "space_guids", "organization_guids", "user_guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at")],
    default_order: "created_at",
    includes: &["user", "space", "organization"],
    labels: false,
};

async fn included(conn: &mut Conn, ctx: &Ctx, roles: &[Role], include: &[String]) -> ApiResult<Value> {
    let mut out = Map::new();
    for inc in include {
        match inc.as_str() {
            "user" => {
                let guids: Vec<String> = roles.iter().map(|r| r.user_guid.clone()).collect();
                let users: Vec<CcUser> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                out.insert("users".into(), Value::Array(super::users::render_many(conn, ctx, &users).await?));
            }
            "space" => {
                let guids: Vec<String> = roles.iter().filter_map(|r| r.space_guid.clone()).collect();
                let spaces: Vec<Space> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                out.insert("spaces".into(), Value::Array(super::spaces::render_many(conn, ctx, &spaces).await?));
            }
            "organization" => {
                let guids: Vec<String> =
                    roles.iter().filter(|r| r.space_guid.is_none()).filter_map(|r| r.org_guid.clone()).collect();
                let orgs: Vec<Org> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                out.insert("organizations".into(), Value::Array(super::orgs::render_many(conn, ctx, &orgs).await?));
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds: Vec<Cond> = visibility(&ctx).into_iter().collect();
    params.in_filters(
        &mut conds,
        &[("guids", "guid"), ("types", "role_type"), ("space_guids", "space_guid"), ("user_guids", "user_guid")],
    );
    if let Some(v) = params.filter("organization_guids") {
        conds.push(Cond::In("org_guid", v.clone()));
        conds.push(Cond::Null("space_guid"));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<Role>(&mut conn, &params.spec(conds)).await?;
    let resources = page.items.iter().map(|r| render(&ctx, r)).collect();
    let inc = if params.include.is_empty() {
        None
    } else {
        Some(included(&mut conn, &ctx, &page.items, &params.include).await?)
    };
    Ok(render::list(&ctx, "/v3/roles", &params, page.total, resources, inc))
}

async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<Role> {
    let mut conds = vec![Cond::Eq("guid", SqlValue::Text(guid.into()))];
    conds.extend(visibility(ctx));
    let role: Option<Role> = store::find_one(conn, &conds).await?;
    role.ok_or(ApiError::NotFound("Role"))
}

pub async fn get_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = crate::params::only_params(q.as_deref(), &["include"])?;
    let mut conn = state.store.conn().await?;
    let role = find_visible(&mut conn, &ctx, &guid).await?;
    let mut out = render(&ctx, &role);
    let include: Vec<String> =
        pairs.iter().filter(|(k, _)| k == "include").flat_map(|(_, v)| v.split(',').map(str::to_string)).collect();
    if let Some(bad) = include.iter().find(|i| !RULES.includes.contains(&i.as_str())) {
        return Err(ApiError::BadQueryParameter(format!("Invalid included resource: '{bad}'")));
    }
    if !include.is_empty() {
        out["included"] = included(&mut conn, &ctx, std::slice::from_ref(&role), &include).await?;
    }
    Ok(ok(out))
}

/// Resolves the user a role is for: by guid, or by username (and origin).
async fn resolve_user(conn: &mut Conn, body: &Body) -> ApiResult<(String, String)> {
    let rels = body
        .sub("relationships", &["user", "organization", "space"])?
        .ok_or_else(|| ApiError::Unprocessable("Relationships can't be blank".into()))?;
    let user = rels
        .sub("user", &["data"])?
        .ok_or_else(|| ApiError::Unprocessable("Relationships 'user' is required".into()))?;
    let data = user
        .sub("data", &["guid", "username", "origin"])?
        .ok_or_else(|| ApiError::Unprocessable("User data can't be blank".into()))?;
    if let Some(guid) = data.opt_str("guid")? {
        let uaa: Option<UaaUser> = store::get(conn, &guid).await?;
        let cc: Option<CcUser> = store::get(conn, &guid).await?;
        let client: Option<store::UaaClient> = store::get(conn, &guid).await?;
        return match (uaa, cc, client) {
            (Some(u), _, _) => Ok((u.guid, u.username)),
            (None, Some(c), _) => Ok((c.guid.clone(), c.guid)),
            (None, None, Some(c)) => Ok((c.client_id.clone(), c.client_id)),
            (None, None, None) => Err(ApiError::Unprocessable(
                "Invalid user. Ensure that the user exists and you have access to it.".into(),
            )),
        };
    }
    let username = data
        .opt_str("username")?
        .ok_or_else(|| ApiError::Unprocessable("User data must have a guid or a username".into()))?;
    let mut conds = vec![Cond::Eq("username", SqlValue::Text(username.clone()))];
    if let Some(origin) = data.opt_str("origin")?.filter(|o| !o.is_empty()) {
        conds.push(Cond::Eq("origin", SqlValue::Text(origin)));
    }
    let matches: Vec<UaaUser> = store::find_all(conn, conds).await?;
    match matches.as_slice() {
        [u] => Ok((u.guid.clone(), u.username.clone())),
        [] => Err(ApiError::Unprocessable(format!("No user exists with the username '{username}'."))),
        _ => Err(ApiError::Unprocessable(format!(
            "User with username '{username}' exists in the following origins: {}. Specify an origin to disambiguate.",
            matches.iter().map(|u| u.origin.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["type", "relationships"])?;
    body.check_relationships(&["user", "organization", "space"])?;
    let type_name = body.req_str("type")?;
    let kind = RoleType::parse(&type_name).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "Type must be one of the allowed types [{}]",
            RoleType::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let mut tx = state.store.begin().await?;
    let (org, space) = if kind.is_space_role() {
        let space_guid = body.relationship_guid("space")?;
        let space: Option<Space> = store::get(&mut tx, &space_guid).await?;
        let space = named_parent(space.filter(|s| ctx.viewer.can_read_space(&s.guid)), &ctx, || {
            "Invalid space. Ensure that the space exists and you have access to it.".into()
        })?;
        let org: Option<Org> = store::get(&mut tx, &space.org_guid).await?;
        (org.ok_or(ApiError::NotFound("Organization"))?, Some(space))
    } else {
        let org_guid = body.relationship_guid("organization")?;
        let org: Option<Org> = store::get(&mut tx, &org_guid).await?;
        let org = named_parent(org.filter(|o| ctx.viewer.can_read_org(&o.guid)), &ctx, || {
            "Invalid organization. Ensure that the organization exists and you have access to it.".into()
        })?;
        (org, None)
    };
    if !ctx.viewer.can_manage_role(kind, &org.guid, space.as_ref().map(|s| s.guid.as_str())) {
        return Err(ApiError::NotAuthorized);
    }
    let (user_guid, username) = resolve_user(&mut tx, &body).await?;
    ensure_cc_user(&mut tx, &user_guid).await?;
    let in_what = match &space {
        Some(s) => format!("space '{}'", s.name),
        None => format!("organization '{}'", org.name),
    };
    let mut dup = vec![
        Cond::Eq("role_type", SqlValue::Text(kind.as_str().into())),
        Cond::Eq("user_guid", SqlValue::Text(user_guid.clone())),
    ];
    match &space {
        Some(s) => dup.push(Cond::Eq("space_guid", SqlValue::Text(s.guid.clone()))),
        None => {
            dup.push(Cond::Eq("org_guid", SqlValue::Text(org.guid.clone())));
            dup.push(Cond::Null("space_guid"));
        }
    }
    let existing: Option<Role> = store::find_one(&mut tx, &dup).await?;
    if existing.is_some() {
        return Err(ApiError::Unprocessable(format!(
            "User '{username}' already has '{}' role in {in_what}.",
            kind.as_str()
        )));
    }
    if space.is_some() {
        let in_org: Option<Role> = store::find_one(
            &mut tx,
            &[
                Cond::Eq("user_guid", SqlValue::Text(user_guid.clone())),
                Cond::Eq("org_guid", SqlValue::Text(org.guid.clone())),
                Cond::Null("space_guid"),
            ],
        )
        .await?;
        if in_org.is_none() {
            return Err(ApiError::Unprocessable(
                "Users cannot be assigned roles in a space if they do not have a role in that space's organization."
                    .into(),
            ));
        }
    }
    let now = store::now();
    let role = Role {
        guid: store::new_guid(),
        role_type: kind.as_str().into(),
        user_guid: user_guid.clone(),
        org_guid: Some(org.guid.clone()),
        space_guid: space.as_ref().map(|s| s.guid.clone()),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &role).await?;
    let (event, target_kind, target_guid, target_name) = match &space {
        Some(s) => (format!("audit.user.{}_add", kind.as_str()), "space", s.guid.clone(), s.name.clone()),
        None => (format!("audit.user.{}_add", kind.as_str()), "organization", org.guid.clone(), org.name.clone()),
    };
    audit(
        &mut tx,
        &ctx,
        &event,
        Target { guid: &target_guid, kind: target_kind, name: &target_name },
        json!({"request": {"type": kind.as_str(), "user_guid": user_guid, "username": username}}),
        space.as_ref().map(|s| s.guid.as_str()),
        Some(&org.guid),
    )
    .await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &role)))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let role = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    let kind = RoleType::parse(&role.role_type)
        .ok_or_else(|| ApiError::Internal(format!("stored role type '{}'", role.role_type)))?;
    let org = role.org_guid.clone().unwrap_or_default();
    if !ctx.viewer.can_manage_role(kind, &org, role.space_guid.as_deref()) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let job = spawn_job(&state, &ctx, "role.delete", "role", &guid, async move {
        let mut tx = st.store.begin().await?;
        store::delete::<Role>(&mut tx, &role.guid).await?;
        let target = role.space_guid.clone().unwrap_or_else(|| org.clone());
        audit(
            &mut tx,
            &actor,
            &format!("audit.user.{}_remove", role.role_type),
            Target {
                guid: &target,
                kind: if role.space_guid.is_some() { "space" } else { "organization" },
                name: &target,
            },
            json!({"request": {"user_guid": role.user_guid}}),
            role.space_guid.as_deref(),
            Some(&org),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}
