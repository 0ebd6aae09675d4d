//! Role names: what people type (`OrgManager`, as the cf CLI spells them) and
//! what the V3 API calls them (`organization_manager`).

use anyhow::{Result, bail};

/// A role a user can hold in an org or a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    OrgUser,
    OrgManager,
    BillingManager,
    OrgAuditor,
    SpaceManager,
    SpaceDeveloper,
    SpaceAuditor,
    SpaceSupporter,
}

/// The org roles `set-org-role` accepts, in the order `org-users` lists them.
pub const ORG_ROLES: [Role; 3] = [Role::OrgManager, Role::BillingManager, Role::OrgAuditor];

/// The space roles `set-space-role` accepts, in the order `space-users` lists them.
pub const SPACE_ROLES: [Role; 4] = [Role::SpaceManager, Role::SpaceDeveloper, Role::SpaceAuditor, Role::SpaceSupporter];

impl Role {
    /// The role's `type` in the V3 API.
    pub fn api_type(self) -> &'static str {
        match self {
            Role::OrgUser => "organization_user",
            Role::OrgManager => "organization_manager",
            Role::BillingManager => "organization_billing_manager",
            Role::OrgAuditor => "organization_auditor",
            Role::SpaceManager => "space_manager",
            Role::SpaceDeveloper => "space_developer",
            Role::SpaceAuditor => "space_auditor",
            Role::SpaceSupporter => "space_supporter",
        }
    }

    /// The name people type and read, as the cf CLI spells it.
    pub fn cli_name(self) -> &'static str {
        match self {
            Role::OrgUser => "OrgUser",
            Role::OrgManager => "OrgManager",
            Role::BillingManager => "BillingManager",
            Role::OrgAuditor => "OrgAuditor",
            Role::SpaceManager => "SpaceManager",
            Role::SpaceDeveloper => "SpaceDeveloper",
            Role::SpaceAuditor => "SpaceAuditor",
            Role::SpaceSupporter => "SpaceSupporter",
        }
    }

    /// The heading `org-users` and `space-users` print above the role's users.
    pub fn heading(self) -> &'static str {
        match self {
            Role::OrgUser => "USERS",
            Role::OrgManager => "ORG MANAGER",
            Role::BillingManager => "BILLING MANAGER",
            Role::OrgAuditor => "ORG AUDITOR",
            Role::SpaceManager => "SPACE MANAGER",
            Role::SpaceDeveloper => "SPACE DEVELOPER",
            Role::SpaceAuditor => "SPACE AUDITOR",
            Role::SpaceSupporter => "SPACE SUPPORTER",
        }
    }

    /// Parses an org role as `set-org-role` takes it (case does not matter).
    pub fn parse_org(name: &str) -> Result<Self> {
        parse_from(&ORG_ROLES, name, "an org")
    }

    /// Parses a space role as `set-space-role` takes it (case does not matter).
    pub fn parse_space(name: &str) -> Result<Self> {
        parse_from(&SPACE_ROLES, name, "a space")
    }
}

fn parse_from(roles: &[Role], name: &str, scope: &str) -> Result<Role> {
    if let Some(role) = roles.iter().find(|r| r.cli_name().eq_ignore_ascii_case(name)) {
        return Ok(*role);
    }
    let names: Vec<&str> = roles.iter().map(|r| r.cli_name()).collect();
    bail!("'{name}' is not {scope} role. Use one of: {}.", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_roles_map_to_api_types() {
        assert_eq!(Role::parse_org("OrgManager").unwrap().api_type(), "organization_manager");
        assert_eq!(Role::parse_org("billingmanager").unwrap().api_type(), "organization_billing_manager");
        assert_eq!(Role::parse_org("ORGAUDITOR").unwrap().api_type(), "organization_auditor");
    }

    #[test]
    fn space_roles_map_to_api_types() {
        assert_eq!(Role::parse_space("SpaceManager").unwrap().api_type(), "space_manager");
        assert_eq!(Role::parse_space("SpaceDeveloper").unwrap().api_type(), "space_developer");
        assert_eq!(Role::parse_space("SpaceAuditor").unwrap().api_type(), "space_auditor");
        assert_eq!(Role::parse_space("spacesupporter").unwrap().api_type(), "space_supporter");
    }

    #[test]
    fn wrong_scope_is_rejected_with_the_choices() {
        let err = Role::parse_org("SpaceDeveloper").unwrap_err().to_string();
        assert!(err.contains("OrgManager, BillingManager, OrgAuditor"), "{err}");
        assert!(Role::parse_space("OrgManager").is_err());
        assert!(Role::parse_space("").is_err());
    }

    #[test]
    fn cli_names_round_trip() {
        for role in ORG_ROLES {
            assert_eq!(Role::parse_org(role.cli_name()).unwrap(), role);
        }
        for role in SPACE_ROLES {
            assert_eq!(Role::parse_space(role.cli_name()).unwrap(), role);
        }
    }
}
