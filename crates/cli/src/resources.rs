//! Finding V3 resources by the names people type, and the targeted org and
//! space, with errors that say what to run next.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::config::Targeted;
use crate::session::Session;

/// Builds `path?k=v&...` with the values URL-encoded.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> Result<String> {
    let mut url = reqwest::Url::parse("http://placeholder/")
        .and_then(|base| base.join(path))
        .with_context(|| format!("cannot build a URL from {path}"))?;
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(format!("{}{query}", url.path()))
}

/// The `guid` of a V3 resource.
pub fn guid(resource: &Value) -> &str {
    resource.get("guid").and_then(Value::as_str).unwrap_or_default()
}

/// The `name` of a V3 resource.
pub fn name(resource: &Value) -> &str {
    resource.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// A resource as the config remembers it.
pub fn targeted(resource: &Value) -> Targeted {
    Targeted { name: name(resource).to_owned(), guid: guid(resource).to_owned() }
}

/// The org called `org_name`, if the user can see it.
pub async fn lookup_org(session: &mut Session, org_name: &str) -> Result<Option<Value>> {
    let path = with_query("/v3/organizations", &[("names", org_name)])?;
    Ok(session.list(&path).await?.into_iter().find(|o| name(o) == org_name))
}

/// The org called `org_name`, or an error telling the user how to list orgs.
pub async fn find_org(session: &mut Session, org_name: &str) -> Result<Value> {
    lookup_org(session, org_name)
        .await?
        .ok_or_else(|| anyhow!("Org '{org_name}' not found. Run 'hearth orgs' to see the orgs you can use."))
}

/// The space called `space_name` in `org`, if the user can see it.
pub async fn lookup_space(session: &mut Session, org: &Targeted, space_name: &str) -> Result<Option<Value>> {
    let path = with_query("/v3/spaces", &[("names", space_name), ("organization_guids", org.guid.as_str())])?;
    Ok(session.list(&path).await?.into_iter().find(|s| name(s) == space_name))
}

/// The space called `space_name` in `org`, or an error telling the user how to list spaces.
pub async fn find_space(session: &mut Session, org: &Targeted, space_name: &str) -> Result<Value> {
    lookup_space(session, org, space_name).await?.ok_or_else(|| {
        anyhow!(
            "Space '{space_name}' not found in org '{}'. Run 'hearth spaces' to see the spaces you can use.",
            org.name
        )
    })
}

/// The org named on the command line, else the targeted org.
pub async fn org_or_targeted(session: &mut Session, org_name: Option<&str>) -> Result<Targeted> {
    match org_name {
        Some(org_name) => Ok(targeted(&find_org(session, org_name).await?)),
        None => targeted_org(session),
    }
}

/// The targeted org, or an error saying how to target one.
pub fn targeted_org(session: &Session) -> Result<Targeted> {
    session.config.org.clone().ok_or_else(|| anyhow!("No org targeted. Use 'hearth target -o ORG' to target an org."))
}

/// The targeted space, or an error saying how to target one.
pub fn targeted_space(session: &Session) -> Result<Targeted> {
    targeted_org(session)?;
    match session.config.space.clone() {
        Some(space) => Ok(space),
        None => bail!("No space targeted. Use 'hearth target -s SPACE' to target a space."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query("/v3/spaces", &[("names", "my space&co"), ("organization_guids", "g")]).unwrap(),
            "/v3/spaces?names=my+space%26co&organization_guids=g"
        );
        assert_eq!(with_query("/v3/organizations", &[]).unwrap(), "/v3/organizations");
    }

    #[test]
    fn reads_names_and_guids() {
        let org = serde_json::json!({"guid": "g1", "name": "o"});
        assert_eq!(targeted(&org), Targeted { name: "o".into(), guid: "g1".into() });
        assert_eq!(name(&serde_json::json!({})), "");
    }
}
