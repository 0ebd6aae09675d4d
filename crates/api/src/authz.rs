//! Who may see and do what, with Cloud Foundry's semantics. Pure decisions over the
//! caller's scopes and roles: no I/O here (the roles are loaded by `context`).
//!
//! A resource the caller may not see answers 404; one it may see but not change, 403.

use std::collections::{BTreeMap, BTreeSet};

/// CF's role types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoleType {
    OrganizationUser,
    OrganizationAuditor,
    OrganizationManager,
    OrganizationBillingManager,
    SpaceAuditor,
    SpaceDeveloper,
    SpaceManager,
    SpaceSupporter,
}

impl RoleType {
    pub const ALL: [RoleType; 8] = [
        RoleType::OrganizationUser,
        RoleType::OrganizationAuditor,
        RoleType::OrganizationManager,
        RoleType::OrganizationBillingManager,
        RoleType::SpaceAuditor,
        RoleType::SpaceDeveloper,
        RoleType::SpaceManager,
        RoleType::SpaceSupporter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::OrganizationUser => "organization_user",
            RoleType::OrganizationAuditor => "organization_auditor",
            RoleType::OrganizationManager => "organization_manager",
            RoleType::OrganizationBillingManager => "organization_billing_manager",
            RoleType::SpaceAuditor => "space_auditor",
            RoleType::SpaceDeveloper => "space_developer",
            RoleType::SpaceManager => "space_manager",
            RoleType::SpaceSupporter => "space_supporter",
        }
    }

    pub fn parse(s: &str) -> Option<RoleType> {
        RoleType::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn is_space_role(self) -> bool {
        matches!(
            self,
            RoleType::SpaceAuditor | RoleType::SpaceDeveloper | RoleType::SpaceManager | RoleType::SpaceSupporter
        )
    }
}

/// Platform-wide powers, from the token's scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    Admin,
    AdminReadOnly,
    GlobalAuditor,
    None,
}

/// The caller, as authorization sees it.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub guid: String,
    pub name: String,
    pub global: Global,
    /// Holds `cloud_controller.read` (needed for any read by a non-admin).
    pub can_read: bool,
    /// Holds `cloud_controller.write` (needed for any change by a non-admin).
    pub can_write: bool,
    pub org_roles: BTreeMap<String, BTreeSet<RoleType>>,
    /// space guid → (its org guid, the roles held in it)
    pub space_roles: BTreeMap<String, (String, BTreeSet<RoleType>)>,
    /// Spaces of orgs the caller manages (org managers see all their spaces).
    pub managed_org_spaces: BTreeSet<String>,
}

impl Viewer {
    /// A viewer with global powers and no roles (used by tests and internal work).
    pub fn global(guid: &str, global: Global) -> Viewer {
        Viewer {
            guid: guid.into(),
            name: guid.into(),
            global,
            can_read: true,
            can_write: true,
            org_roles: BTreeMap::new(),
            space_roles: BTreeMap::new(),
            managed_org_spaces: BTreeSet::new(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.global == Global::Admin
    }

    /// Everything that decides what this viewer may see and do, as text: two viewers with
    /// the same sight are shown the same answers (the answer cache files answers under it).
    /// Every global viewer of one kind has one sight; a viewer's own name and guid are not
    /// part of it.
    pub fn sight(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("{:?} read={} write={}", self.global, self.can_read, self.can_write);
        for (org, roles) in &self.org_roles {
            let _ = write!(out, " org {org} {roles:?}");
        }
        for (space, (org, roles)) in &self.space_roles {
            let _ = write!(out, " space {space} in {org} {roles:?}");
        }
        for space in &self.managed_org_spaces {
            let _ = write!(out, " managed {space}");
        }
        out
    }

    /// Sees everything (admin, read-only admin, global auditor).
    pub fn reads_all(&self) -> bool {
        self.global != Global::None
    }

    fn has_org_role(&self, org: &str, role: RoleType) -> bool {
        self.org_roles.get(org).is_some_and(|r| r.contains(&role))
    }

    fn has_space_role(&self, space: &str, role: RoleType) -> bool {
        self.space_roles.get(space).is_some_and(|(_, r)| r.contains(&role))
    }

    /// Orgs the caller may see; `None` means all.
    pub fn readable_orgs(&self) -> Option<Vec<String>> {
        if self.reads_all() {
            return None;
        }
        if !self.can_read {
            return Some(vec![]);
        }
        let mut set: BTreeSet<String> = self.org_roles.keys().cloned().collect();
        set.extend(self.space_roles.values().map(|(org, _)| org.clone()));
        Some(set.into_iter().collect())
    }

    /// Spaces the caller may see; `None` means all.
    pub fn readable_spaces(&self) -> Option<Vec<String>> {
        if self.reads_all() {
            return None;
        }
        if !self.can_read {
            return Some(vec![]);
        }
        let mut set: BTreeSet<String> = self.space_roles.keys().cloned().collect();
        set.extend(self.managed_org_spaces.iter().cloned());
        Some(set.into_iter().collect())
    }

    pub fn can_read_org(&self, org: &str) -> bool {
        self.readable_orgs().is_none_or(|orgs| orgs.iter().any(|o| o == org))
    }

    pub fn can_read_space(&self, space: &str) -> bool {
        self.readable_spaces().is_none_or(|s| s.iter().any(|g| g == space))
    }

    /// CF's `can_read_from_space?`: as [`Viewer::can_read_space`], but a space supporter's
    /// role alone does not count (CF trusts supporters with fewer reads: a package to copy).
    pub fn can_read_space_beyond_support(&self, space: &str) -> bool {
        if self.reads_all() {
            return true;
        }
        self.can_read
            && (self.managed_org_spaces.contains(space)
                || [RoleType::SpaceAuditor, RoleType::SpaceDeveloper, RoleType::SpaceManager]
                    .iter()
                    .any(|r| self.has_space_role(space, *r)))
    }

    fn writes(&self) -> bool {
        self.can_write
    }

    /// Update the org, manage its roles, create its spaces and private domains.
    pub fn can_manage_org(&self, org: &str) -> bool {
        self.is_admin() || (self.writes() && self.has_org_role(org, RoleType::OrganizationManager))
    }

    /// Update the space and manage its roles.
    pub fn can_manage_space(&self, space: &str, org: &str) -> bool {
        self.can_manage_org(org) || (self.writes() && self.has_space_role(space, RoleType::SpaceManager))
    }

    /// Create, change and delete apps and routes in the space.
    pub fn can_develop_space(&self, space: &str) -> bool {
        self.is_admin() || (self.writes() && self.has_space_role(space, RoleType::SpaceDeveloper))
    }

    /// Scale, start, stop and restart apps in the space.
    pub fn can_operate_space(&self, space: &str) -> bool {
        self.can_develop_space(space) || (self.writes() && self.has_space_role(space, RoleType::SpaceSupporter))
    }

    /// Read secrets (environment variables) of apps in the space.
    pub fn can_read_secrets(&self, space: &str) -> bool {
        matches!(self.global, Global::Admin | Global::AdminReadOnly)
            || (self.can_read
                && (self.has_space_role(space, RoleType::SpaceDeveloper)
                    || self.has_space_role(space, RoleType::SpaceSupporter)))
    }

    /// Orgs holding one of `roles` for the caller.
    pub fn orgs_with(&self, roles: &[RoleType]) -> Vec<String> {
        self.org_roles.iter().filter(|(_, r)| roles.iter().any(|x| r.contains(x))).map(|(o, _)| o.clone()).collect()
    }

    /// Spaces holding one of `roles` for the caller.
    pub fn spaces_with(&self, roles: &[RoleType]) -> Vec<String> {
        self.space_roles
            .iter()
            .filter(|(_, (_, r))| roles.iter().any(|x| r.contains(x)))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Orgs whose private domains the caller sees: those it manages or audits, and
    /// those it is a member of a space in (not org users or billing managers alone).
    pub fn domain_readable_orgs(&self) -> Option<Vec<String>> {
        if self.reads_all() {
            return None;
        }
        if !self.can_read {
            return Some(vec![]);
        }
        let mut set: BTreeSet<String> =
            self.orgs_with(&[RoleType::OrganizationManager, RoleType::OrganizationAuditor]).into_iter().collect();
        set.extend(self.space_roles.values().map(|(org, _)| org.clone()));
        Some(set.into_iter().collect())
    }

    /// Assign or remove a role.
    pub fn can_manage_role(&self, role: RoleType, org: &str, space: Option<&str>) -> bool {
        match (role.is_space_role(), space) {
            (true, Some(space)) => self.can_manage_space(space, org),
            _ => self.can_manage_org(org),
        }
    }

    /// See audit events of the org/space.
    pub fn can_read_events(&self, org: Option<&str>, space: Option<&str>) -> bool {
        if self.reads_all() {
            return true;
        }
        if !self.can_read {
            return false;
        }
        let org_auditor = org.is_some_and(|o| self.has_org_role(o, RoleType::OrganizationAuditor));
        let space_ok = space.is_some_and(|s| {
            [RoleType::SpaceAuditor, RoleType::SpaceDeveloper, RoleType::SpaceManager, RoleType::SpaceSupporter]
                .iter()
                .any(|r| self.has_space_role(s, *r))
        });
        org_auditor || space_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_in(space: &str, org: &str) -> Viewer {
        let mut v = Viewer::global("u", Global::None);
        v.org_roles.insert(org.into(), [RoleType::OrganizationUser].into());
        v.space_roles.insert(space.into(), (org.into(), [RoleType::SpaceDeveloper].into()));
        v
    }

    #[test]
    fn a_space_developer_sees_its_org_and_space_and_develops_only_there() {
        let v = dev_in("s1", "o1");
        assert!(v.can_read_org("o1") && !v.can_read_org("o2"));
        assert!(v.can_read_space("s1") && !v.can_read_space("s2"));
        assert!(v.can_develop_space("s1") && !v.can_develop_space("s2"));
        assert!(!v.can_manage_org("o1"));
        assert!(!v.can_manage_space("s1", "o1"));
        assert!(v.can_read_secrets("s1"));
    }

    #[test]
    fn an_org_manager_manages_every_space_of_its_org() {
        let mut v = Viewer::global("u", Global::None);
        v.org_roles.insert("o1".into(), [RoleType::OrganizationManager].into());
        v.managed_org_spaces.insert("s9".into());
        assert!(v.can_read_space("s9"));
        assert!(v.can_manage_space("s9", "o1"));
        assert!(v.can_manage_role(RoleType::SpaceDeveloper, "o1", Some("s9")));
        assert!(!v.can_develop_space("s9"), "managing is not developing");
        assert!(!v.can_read_secrets("s9"));
    }

    #[test]
    fn read_only_admins_and_auditors_see_everything_and_change_nothing() {
        for g in [Global::AdminReadOnly, Global::GlobalAuditor] {
            let v = Viewer::global("u", g);
            assert!(v.can_read_org("any") && v.can_read_space("any"));
            assert!(!v.can_manage_org("any") && !v.can_develop_space("any"));
        }
        assert!(Viewer::global("u", Global::AdminReadOnly).can_read_secrets("s"));
        assert!(!Viewer::global("u", Global::GlobalAuditor).can_read_secrets("s"));
    }

    #[test]
    fn without_the_write_scope_a_manager_cannot_change_anything() {
        let mut v = Viewer::global("u", Global::None);
        v.org_roles.insert("o1".into(), [RoleType::OrganizationManager].into());
        v.can_write = false;
        assert!(v.can_read_org("o1"));
        assert!(!v.can_manage_org("o1"));
    }

    #[test]
    fn a_space_supporter_alone_does_not_read_beyond_support() {
        let mut v = Viewer::global("u", Global::None);
        v.space_roles.insert("s1".into(), ("o1".into(), [RoleType::SpaceSupporter].into()));
        assert!(v.can_read_space("s1") && !v.can_read_space_beyond_support("s1"));
        v.space_roles.insert("s1".into(), ("o1".into(), [RoleType::SpaceSupporter, RoleType::SpaceAuditor].into()));
        assert!(v.can_read_space_beyond_support("s1"));
        assert!(dev_in("s1", "o1").can_read_space_beyond_support("s1"));
        assert!(!dev_in("s1", "o1").can_read_space_beyond_support("s2"));
        assert!(Viewer::global("u", Global::GlobalAuditor).can_read_space_beyond_support("s9"));
    }

    #[test]
    fn role_names_round_trip() {
        for r in RoleType::ALL {
            assert_eq!(RoleType::parse(r.as_str()), Some(r));
        }
        assert_eq!(RoleType::parse("space_admin"), None);
    }
}
