//! Authorization end to end (issue 2): every API endpoint × every kind of caller, one
//! table, checked against the rules Cloud Foundry documents: the "Permitted roles" of
//! each endpoint in the V3 API docs, and `Permissions` in cloud_controller_ng. A resource
//! the caller may not see answers 404, one it may see but not change 403, and a list
//! holds only what the caller may see.
//!
//! Set-up: org A with space A1 and org B with space B1, an app, a route on the shared
//! domain and a private domain in each; one user per CF role (org roles in A, space roles
//! in A1, each space role holder also an organization_user of A), a user with no role, a
//! `cloud_controller.admin_read_only` and a `cloud_controller.global_auditor` user, the
//! admin user, the `admin` client (client_credentials) and a caller without a token.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestPlatform;
use common::uploads::{droplet_tgz, multipart, zip_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The callers, one column each in `ROWS`: the column's letter and the caller's name.
/// The eight CF roles are named by their role type: org roles in org A, space roles in A1.
const CALLERS: [(char, &str); 14] = [
    ('A', "admin"),
    ('C', "admin client (client_credentials)"),
    ('R', "cloud_controller.admin_read_only"),
    ('G', "cloud_controller.global_auditor"),
    ('u', "organization_user"),
    ('a', "organization_auditor"),
    ('m', "organization_manager"),
    ('b', "organization_billing_manager"),
    ('S', "space_auditor"),
    ('D', "space_developer"),
    ('M', "space_manager"),
    ('P', "space_supporter"),
    ('n', "no role"),
    ('-', "anonymous (no token)"),
];
const ORG_ROLES: std::ops::RangeInclusive<usize> = 4..=7;
const SPACE_ROLES: std::ops::RangeInclusive<usize> = 8..=11;
const ANONYMOUS: usize = 13;
const PASSWORD: &str = "authz-password";

/// `{fresh}` in a row: a new resource the admin makes just before each cell, so that
/// rows which change or delete things do not interfere.
#[derive(Clone, Copy)]
enum Fresh {
    No,
    /// An org in which the caller holds its org role (space role holders: organization_user).
    OrgMirror,
    /// A space of org A in which a space role holder holds its space role.
    SpaceMirror,
    App,
    Route,
    DomainOfA,
    SharedDomain,
    Stack,
    Quota,
    User,
    /// A user who is an organization_user of A.
    UserInA,
    /// A role: another user's organization_auditor role in A.
    OrgRoleInA,
    /// A role: another user's space_auditor role in A1.
    SpaceRoleInA1,
    /// A role: the caller's own organization_auditor role in a new org.
    OwnRole,
    /// A user-provided service instance in A1.
    ServiceInstance,
    /// A binding of app A to a new user-provided service instance in A1.
    Binding,
}
use Fresh::*;

/// Expected status of each caller, one letter per column of `CALLERS`:
/// O 200, C 201, A 202, E 204, X 401, F 403, N 404, U 422.
/// Then "METHOD path" (a `#` starts a note), the JSON body, the fresh resource, and list
/// checks: an id → for each caller, whether a 200 list holds it (y) or not (n); `EMPTY`
/// with y: the list must be empty.
type Row = (&'static str, &'static str, &'static str, Fresh, &'static [(&'static str, &'static str)]);

const LABELS: &str = r#"{"metadata":{"labels":{"authz":"checked"}}}"#;
const ORG_ROLE: &str = r#"{"type":"organization_auditor","relationships":{"user":{"data":{"guid":"{fresh}"}},
    "organization":{"data":{"guid":"{org_a}"}}}}"#;
const SPACE_ROLE: &str = r#"{"type":"space_auditor","relationships":{"user":{"data":{"guid":"{fresh}"}},
    "space":{"data":{"guid":"{space_a1}"}}}}"#;
const PRIVATE_DOMAIN: &str =
    r#"{"name":"d{u}.authz.test","relationships":{"organization":{"data":{"guid":"{org_a}"}}}}"#;
const ROUTE: &str = r#"{"host":"r{u}","relationships":{"space":{"data":{"guid":"{space_a1}"}},
    "domain":{"data":{"guid":"{shared}"}}}}"#;
const APP_IN_A1: &str = r#"{"name":"app-{u}","relationships":{"space":{"data":{"guid":"{space_a1}"}}}}"#;
const APP_IN_B1: &str = r#"{"name":"app-{u}","relationships":{"space":{"data":{"guid":"{space_b1}"}}}}"#;
const SPACE_IN_A: &str = r#"{"name":"space-{u}","relationships":{"organization":{"data":{"guid":"{org_a}"}}}}"#;
const SPACE_IN_B: &str = r#"{"name":"space-{u}","relationships":{"organization":{"data":{"guid":"{org_b}"}}}}"#;
const SCALE: &str = r#"{"instances":1}"#;
const FOR_APP_A: &str = r#"{"relationships":{"app":{"data":{"guid":"{app_a}"}}}}"#;
const UPSI: &str = r#"{"type":"user-provided","name":"si-{u}","credentials":{"uri":"postgres://u:p@h/d"},
    "relationships":{"space":{"data":{"guid":"{space_a1}"}}}}"#;
const BINDING: &str = r#"{"type":"app","relationships":{"app":{"data":{"guid":"{app_a}"}},
    "service_instance":{"data":{"guid":"{fresh}"}}}}"#;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // ACRGuambSDMPn-
    ("OOOOOOOOOOOOOO", "GET /", "", No, &[]),
    ("OOOOOOOOOOOOOO", "GET /v3", "", No, &[]),
    ("OOOOOOOOOOOOOO", "GET /v3/info", "", No, &[]),
    ("NNNNNNNNNNNNNN", "GET /v3/no_such_resource", "", No, &[]),
    // Organizations: create admin only (user_org_creation is off), update admin and org
    // manager, delete admin.
    ("OOOOOOOOOOOOOX", "GET /v3/organizations?per_page=5000", "", No,
        &[("org_a", "yyyyyyyyyyyyn-"), ("org_b", "yyyynnnnnnnnn-"), ("EMPTY", "nnnnnnnnnnnny-")]),
    ("CCFFFFFFFFFFFX", "POST /v3/organizations", r#"{"name":"org-{u}"}"#, No, &[]),
    ("OOOOOOOOOOOONX", "GET /v3/organizations/{org_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/organizations/{org_b}", "", No, &[]),
    ("OOFFFFOFFFFFNX", "PATCH /v3/organizations/{org_a}", LABELS, No, &[]),
    ("OOFFFFOFFFFFNX", "PATCH /v3/organizations/{org_a} #suspended false", r#"{"suspended":false}"#, No, &[]),
    ("OOFFNNNNNNNNNX", "PATCH /v3/organizations/{org_b}", LABELS, No, &[]),
    ("AAFFFFFFFFFFNX", "DELETE /v3/organizations/{fresh}", "", OrgMirror, &[]),
    ("OOOOOOOOOOOONX", "GET /v3/organizations/{org_a}/domains?per_page=5000", "", No,
        &[("shared", "yyyyyyyyyyyyn-"), ("domain_a", "yyyynyynyyyyn-"), ("domain_b", "nnnnnnnnnnnnn-")]),
    ("OOOOOOOOOOOONX", "GET /v3/organizations/{org_a}/domains/default", "", No, &[]),
    ("OOOOOOOOOOOONX", "GET /v3/organizations/{org_a}/users?per_page=5000", "", No, &[("dev", "yyyyyyyyyyyyn-")]),
    ("OOOOOOOOOOOONX", "GET /v3/organizations/{org_a}/relationships/default_isolation_segment", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/organizations/{org_b}/relationships/default_isolation_segment", "", No, &[]),
    // Spaces: org users see none unless they hold a space role or manage the org; create
    // and delete admin and org manager, update also space manager.
    ("OOOOOOOOOOOOOX", "GET /v3/spaces?per_page=5000", "", No,
        &[("space_a1", "yyyynnynyyyyn-"), ("space_b1", "yyyynnnnnnnnn-"), ("EMPTY", "nnnnyynynnnny-")]),
    ("CCFFFFCFFFFFUX", "POST /v3/spaces", SPACE_IN_A, No, &[]),
    ("CCFFUUUUUUUUUX", "POST /v3/spaces #in org B", SPACE_IN_B, No, &[]),
    ("OOOONNONOOOONX", "GET /v3/spaces/{space_a1}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/spaces/{space_b1}", "", No, &[]),
    ("OOFFNNONFFOFNX", "PATCH /v3/spaces/{space_a1}", LABELS, No, &[]),
    ("OOFFNNNNNNNNNX", "PATCH /v3/spaces/{space_b1}", LABELS, No, &[]),
    ("AAFFNNANFFFFNX", "DELETE /v3/spaces/{fresh}", "", SpaceMirror, &[]),
    ("OOOONNONOOOONX", "GET /v3/spaces/{space_a1}/features", "", No, &[]),
    ("OOOONNONOOOONX", "GET /v3/spaces/{space_a1}/users?per_page=5000", "", No, &[("dev", "yyyynnynyyyyn-")]),
    ("OOOONNONOOOONX", "GET /v3/spaces/{space_a1}/relationships/isolation_segment", "", No, &[]),
    // Users: everyone sees itself and the users of its orgs; only admins change them.
    ("OOOOOOOOOOOOOX", "GET /v3/users?per_page=5000", "", No,
        &[("dev", "yyyyyyyyyyyyn-"), ("norole", "yyyynnnnnnnny-"), ("user_b", "yyyynnnnnnnnn-")]),
    ("CCFFFFFFFFFFFX", "POST /v3/users", r#"{"guid":"user-{u}"}"#, No, &[]),
    ("OOOOOOOOOOOONX", "GET /v3/users/{dev}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/users/{user_b}", "", No, &[]),
    ("OOFFFFFFFFFFNX", "PATCH /v3/users/{dev}", LABELS, No, &[]),
    ("AAFFFFFFFFFFNX", "DELETE /v3/users/{fresh}", "", UserInA, &[]),
    // Roles: org roles by admin and org manager, space roles also by space manager. Space
    // roles are seen through the space only (CF's roles view has no org on them).
    ("OOOOOOOOOOOOOX", "GET /v3/roles?per_page=5000", "", No,
        &[("role_dev_org", "yyyyyyyyyyyyn-"), ("role_dev_space", "yyyynnynyyyyn-"), ("role_b", "yyyynnnnnnnnn-")]),
    ("CCFFFFCFFFFFFX", "POST /v3/roles #org role", ORG_ROLE, User, &[]),
    ("CCFFFFCFFFCFFX", "POST /v3/roles #space role", SPACE_ROLE, UserInA, &[]),
    ("OOOOOOOOOOOONX", "GET /v3/roles/{role_dev_org}", "", No, &[]),
    ("OOOONNONOOOONX", "GET /v3/roles/{role_dev_space}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/roles/{role_b}", "", No, &[]),
    ("AAFFFFAFFFFFNX", "DELETE /v3/roles/{fresh} #org role", "", OrgRoleInA, &[]),
    ("AAFFNNANFFAFNX", "DELETE /v3/roles/{fresh} #space role", "", SpaceRoleInA1, &[]),
    // Domains: shared ones admin only; private ones also their org's manager. A private
    // domain is seen by its org's managers and auditors and by its spaces' members.
    ("OOOOOOOOOOOOOX", "GET /v3/domains?per_page=5000", "", No,
        &[("shared", "yyyyyyyyyyyyy-"), ("domain_a", "yyyynyynyyyyn-"), ("domain_b", "yyyynnnnnnnnn-")]),
    ("CCFFFFCFFFFFFX", "POST /v3/domains #private", PRIVATE_DOMAIN, No, &[]),
    ("CCFFFFFFFFFFFX", "POST /v3/domains #shared", r#"{"name":"s{u}.authz.test"}"#, No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/domains/{shared}", "", No, &[]),
    ("OOOONOONOOOONX", "GET /v3/domains/{domain_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/domains/{domain_b}", "", No, &[]),
    ("OOFFFFFFFFFFFX", "PATCH /v3/domains/{shared}", LABELS, No, &[]),
    ("OOFFNFONFFFFNX", "PATCH /v3/domains/{domain_a}", LABELS, No, &[]),
    ("OOFFNNNNNNNNNX", "PATCH /v3/domains/{domain_b}", LABELS, No, &[]),
    ("AAFFNFANFFFFNX", "DELETE /v3/domains/{fresh} #private", "", DomainOfA, &[]),
    ("AAFFFFFFFFFFFX", "DELETE /v3/domains/{fresh} #shared", "", SharedDomain, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/domains/{shared}/route_reservations?host=route-a", "", No, &[]),
    ("OOOONOONOOOONX", "GET /v3/domains/{domain_a}/route_reservations?host=x", "", No, &[]),
    // Routes: seen by the space's readers and the org's auditors; changed by admin, space
    // developer and space supporter.
    ("OOOOOOOOOOOOOX", "GET /v3/routes?per_page=5000", "", No,
        &[("route_a", "yyyynyynyyyyn-"), ("route_b", "yyyynnnnnnnnn-")]),
    ("CCFFFFFFFCFCFX", "POST /v3/routes", ROUTE, No, &[]),
    ("OOOONOONOOOONX", "GET /v3/routes/{route_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/routes/{route_b}", "", No, &[]),
    ("OOFFNFFNFOFONX", "PATCH /v3/routes/{route_a}", LABELS, No, &[]),
    ("OOFFNNNNNNNNNX", "PATCH /v3/routes/{route_b}", LABELS, No, &[]),
    ("AAFFNFFNFAFANX", "DELETE /v3/routes/{fresh}", "", Route, &[]),
    ("OOOONOONOOOONX", "GET /v3/routes/{route_a}/destinations", "", No, &[]),
    // Apps: seen by the space's readers; changed by admin and space developer; their
    // environment read by admin, read-only admin, space developer and space supporter.
    ("OOOOOOOOOOOOOX", "GET /v3/apps?per_page=5000", "", No,
        &[("app_a", "yyyynnynyyyyn-"), ("app_b", "yyyynnnnnnnnn-")]),
    ("CCFFUUFUFCFFUX", "POST /v3/apps", APP_IN_A1, No, &[]),
    ("CCFFUUUUUUUUUX", "POST /v3/apps #in space B1", APP_IN_B1, No, &[]),
    ("OOOONNONOOOONX", "GET /v3/apps/{app_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/apps/{app_b}", "", No, &[]),
    ("OOFFNNFNFOFFNX", "PATCH /v3/apps/{app_a}", LABELS, No, &[]),
    ("OOFFNNNNNNNNNX", "PATCH /v3/apps/{app_b}", LABELS, No, &[]),
    ("AAFFNNFNFAFFNX", "DELETE /v3/apps/{fresh}", "", App, &[]),
    ("OOOFNNFNFOFONX", "GET /v3/apps/{app_a}/environment_variables", "", No, &[]),
    ("OOOFNNNNNNNNNX", "GET /v3/apps/{app_b}/environment_variables", "", No, &[]),
    ("OOFFNNFNFOFONX", "PATCH /v3/apps/{app_a}/environment_variables", r#"{"var":{"AUTHZ":"1"}}"#, No, &[]),
    ("OOOFNNFNFOFONX", "GET /v3/apps/{app_a}/env", "", No, &[]),
    ("OOOFNNFNFOFONX", "GET /v3/apps/{app_a}/manifest", "", No, &[]),
    ("OOOONNONOOOONX", "GET /v3/apps/{app_a}/processes", "", No, &[]),
    ("OOOONNONOOOONX", "GET /v3/apps/{app_a}/processes/web", "", No, &[]),
    ("OOFFNNFNFOFONX", "PATCH /v3/apps/{app_a}/processes/web", LABELS, No, &[]),
    ("AAFFNNFNFAFANX", "POST /v3/apps/{app_a}/processes/web/actions/scale", SCALE, No, &[]),
    ("OOOONNONOOOONX", "GET /v3/apps/{app_a}/routes", "", No, &[]),
    // Tasks: run by admin and space developer (these apps have no droplet: 422), listed
    // by whoever sees the app (tests/tasks.rs checks get and cancel on a real task).
    ("UUFFNNFNFUFFNX", "POST /v3/apps/{app_a}/tasks #no droplet", r#"{"command":"true"}"#, No, &[]),
    ("UUFFNNNNNNNNNX", "POST /v3/apps/{app_b}/tasks #no droplet", r#"{"command":"true"}"#, No, &[]),
    ("OOOONNONOOOONX", "GET /v3/apps/{app_a}/tasks", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/apps/{app_b}/tasks", "", No, &[]),
    // Service instances and bindings: seen by the space's readers, changed by admin and space
    // developer; a space (or app, instance) the caller cannot see is a 422 on create;
    // credentials only for those who read the space's secrets.
    ("OOOOOOOOOOOOOX", "GET /v3/service_instances?per_page=5000", "", No,
        &[("si_a", "yyyynnynyyyyn-"), ("si_b", "yyyynnnnnnnnn-")]),
    ("CCFFUUFUFCFFUX", "POST /v3/service_instances", UPSI, No, &[]),
    ("OOOONNONOOOONX", "GET /v3/service_instances/{si_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/service_instances/{si_b}", "", No, &[]),
    ("OOFFNNFNFOFFNX", "PATCH /v3/service_instances/{si_a}", LABELS, No, &[]),
    ("OOFFNNNNNNNNNX", "PATCH /v3/service_instances/{si_b}", LABELS, No, &[]),
    ("EEFFNNFNFEFFNX", "DELETE /v3/service_instances/{fresh}", "", ServiceInstance, &[]),
    ("OOOFNNFNFOFONX", "GET /v3/service_instances/{si_a}/credentials", "", No, &[]),
    ("OOOFNNNNNNNNNX", "GET /v3/service_instances/{si_b}/credentials", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/service_credential_bindings?per_page=5000", "", No,
        &[("bind_a", "yyyynnynyyyyn-"), ("bind_b", "yyyynnnnnnnnn-")]),
    ("CCFFUUFUFCFFUX", "POST /v3/service_credential_bindings", BINDING, ServiceInstance, &[]),
    ("OOOONNONOOOONX", "GET /v3/service_credential_bindings/{bind_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/service_credential_bindings/{bind_b}", "", No, &[]),
    ("OOOFNNFNFOFONX", "GET /v3/service_credential_bindings/{bind_a}/details", "", No, &[]),
    ("EEFFNNFNFEFFNX", "DELETE /v3/service_credential_bindings/{fresh}", "", Binding, &[]),
    // Processes: updated and scaled by admin, space developer and space supporter.
    ("OOOOOOOOOOOOOX", "GET /v3/processes?per_page=5000", "", No,
        &[("proc_a", "yyyynnynyyyyn-"), ("proc_b", "yyyynnnnnnnnn-")]),
    ("OOOONNONOOOONX", "GET /v3/processes/{proc_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/processes/{proc_b}", "", No, &[]),
    ("OOFFNNFNFOFONX", "PATCH /v3/processes/{proc_a}", LABELS, No, &[]),
    ("AAFFNNFNFAFANX", "POST /v3/processes/{proc_a}/actions/scale", SCALE, No, &[]),
    ("AAFFNNNNNNNNNX", "POST /v3/processes/{proc_b}/actions/scale", SCALE, No, &[]),
    // Platform-wide resources: everyone reads them, only admins change them.
    ("OOOOOOOOOOOOOX", "GET /v3/stacks", "", No, &[("stack", "yyyyyyyyyyyyy-")]),
    ("CCFFFFFFFFFFFX", "POST /v3/stacks", r#"{"name":"stack-{u}"}"#, No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/stacks/{stack}", "", No, &[]),
    ("OOFFFFFFFFFFFX", "PATCH /v3/stacks/{stack}", LABELS, No, &[]),
    ("EEFFFFFFFFFFFX", "DELETE /v3/stacks/{fresh}", "", Stack, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/feature_flags", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/feature_flags/user_org_creation", "", No, &[]),
    ("OOFFFFFFFFFFFX", "PATCH /v3/feature_flags/app_scaling", r#"{"enabled":true}"#, No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/organization_quotas?per_page=5000", "", No, &[("quota", "yyyyyyyyyyyyy-")]),
    ("CCFFFFFFFFFFFX", "POST /v3/organization_quotas", r#"{"name":"quota-{u}"}"#, No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/organization_quotas/{quota}", "", No, &[]),
    ("OOFFFFFFFFFFFX", "PATCH /v3/organization_quotas/{quota}", r#"{"routes":{"total_reserved_ports":null}}"#, No, &[]),
    ("OOFFFFFFFFFFFX", "POST /v3/organization_quotas/{quota}/relationships/organizations",
        r#"{"data":[{"guid":"{org_a}"}]}"#, No, &[]),
    ("AAFFFFFFFFFFFX", "DELETE /v3/organization_quotas/{fresh}", "", Quota, &[]),
    // Audit events: org auditors see their orgs' events; space auditors, developers and
    // supporters their spaces' events (managers none).
    ("OOOOOOOOOOOOOX", "GET /v3/audit_events?per_page=5000", "", No,
        &[("event_org_a", "yyyynynnnnnnn-"), ("event_app_a", "yyyynynnyynyn-"), ("event_org_b", "yyyynnnnnnnnn-")]),
    ("OOOONONNNNNNNX", "GET /v3/audit_events/{event_org_a}", "", No, &[]),
    ("OOOONONNOONONX", "GET /v3/audit_events/{event_app_a}", "", No, &[]),
    ("OOOONNNNNNNNNX", "GET /v3/audit_events/{event_org_b}", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/jobs/{job}", "", No, &[]),
    // Collections later components fill: empty, but still behind authentication.
    ("OOOOOOOOOOOOOX", "GET /v3/isolation_segments", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/security_groups", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/space_quotas", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/deployments", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/service_offerings", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/service_plans", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/service_brokers", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/buildpacks", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/packages", "", No, &[]),
    // Copies check the destination app, then the source, each read (not by a space
    // supporter's role alone: 422) and written (403) by the caller, as cloud_controller_ng.
    ("CCFFUUFUFCFUUX", "POST /v3/packages?source_guid={package_a}", FOR_APP_A, No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/droplets", "", No, &[]),
    // Droplets without staging: created, uploaded and copied by admins and space developers.
    // This platform runs no containers, so an upload the caller may make is refused after
    // the checks (422; 202 where containers run); droplet_a is unstaged, so a permitted copy
    // or download is CF's 422 for that. Anyone who sees a droplet may download it (CF's
    // code lets space supporters too; its docs leave them out).
    ("CCFFUUFUFCFFUX", "POST /v3/droplets", FOR_APP_A, No, &[]),
    ("UUFFNNFNFUFFNX", "POST /v3/droplets/{droplet_a}/upload", "@droplet.tgz", No, &[]),
    ("UUFFNNFNFUFFNX", "POST /v3/droplets?source_guid={droplet_a}", FOR_APP_A, No, &[]),
    ("UUUUNNUNUUUUNX", "GET /v3/droplets/{droplet_a}/download", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/builds", "", No, &[]),
    ("OOOOOOOOOOOOOX", "GET /v3/tasks", "", No, &[]),
    // Last: it leaves callers holding a role in a new org. CF lets no one but the org's
    // managers remove a role, not even its holder.
    ("AAFFFFFFFFFFFX", "DELETE /v3/roles/{fresh} #own role", "", OwnRole, &[]),
];

/// Where Hearth answers otherwise than CF documents: (row, callers by column letter,
/// Hearth's answer, why). Each is a bug in crates/api; once fixed, its cells answer as CF
/// does and the test fails until the entry is removed here.
#[rustfmt::skip]
const KNOWN: &[(&str, &str, &str, &str)] = &[];

struct World {
    p: TestPlatform,
    admin: String,
    /// Per column: the caller's token, and its guid as a role holder.
    tokens: Vec<Option<String>>,
    users: Vec<Option<String>>,
    /// What `{name}` in a row's path, body or list checks stands for.
    ids: HashMap<String, String>,
    counter: AtomicUsize,
}

impl World {
    fn unique(&self) -> String {
        format!("{}x{}", std::process::id(), self.counter.fetch_add(1, Ordering::Relaxed))
    }

    fn fill(&self, template: &str, fresh: &str, unique: &str) -> String {
        let mut s = template.replace("{fresh}", fresh).replace("{u}", unique);
        for (k, v) in &self.ids {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }

    /// As the admin: POST that must create; answers the new guid.
    async fn create(&self, path: &str, body: Value) -> String {
        let (s, v) = self.p.post(path, &self.admin, body).await;
        assert_eq!(s, StatusCode::CREATED, "set-up: POST {path}: {v}");
        v["guid"].as_str().unwrap().to_string()
    }

    /// As the admin: the first resource a GET lists (its `guid`, or SCIM's `id`).
    async fn first(&self, path: &str) -> String {
        let (s, v) = self.p.get(path, &self.admin).await;
        assert_eq!(s, StatusCode::OK, "set-up: GET {path}: {v}");
        let first = &v["resources"][0];
        first["guid"].as_str().or(first["id"].as_str()).unwrap_or_else(|| panic!("set-up: {path} is empty")).into()
    }

    async fn upsi(&self, space: &str, name: &str) -> String {
        let rel = json!({"space": {"data": {"guid": space}}});
        let body = json!({"type": "user-provided", "name": format!("si-{name}"), "relationships": rel});
        self.create("/v3/service_instances", body).await
    }

    async fn bind(&self, app: &str, si: &str) -> String {
        let rel = json!({"app": {"data": {"guid": app}}, "service_instance": {"data": {"guid": si}}});
        self.create("/v3/service_credential_bindings", json!({"type": "app", "relationships": rel})).await
    }

    async fn role(&self, user: &str, kind: &str, target: (&str, &str)) -> String {
        self.p.give_role(&self.admin, user, kind, target).await
    }

    async fn new_user(&self) -> String {
        self.create("/v3/users", json!({"guid": format!("fresh-user-{}", self.unique())})).await
    }

    async fn fresh(&self, kind: Fresh, c: usize) -> String {
        let n = self.unique();
        let (org_a, a1) = (&self.ids["org_a"], &self.ids["space_a1"]);
        let member = self.users[c].as_deref().filter(|_| ORG_ROLES.contains(&c) || SPACE_ROLES.contains(&c));
        match kind {
            No => String::new(),
            OrgMirror => {
                let org = self.p.create_org(&self.admin, &format!("fresh-{n}")).await;
                if let Some(user) = member {
                    let role = if ORG_ROLES.contains(&c) { CALLERS[c].1 } else { "organization_user" };
                    self.role(user, role, ("organization", &org)).await;
                }
                org
            }
            SpaceMirror => {
                let space = self.p.create_space(&self.admin, org_a, &format!("fresh-{n}")).await;
                if let Some(user) = member.filter(|_| SPACE_ROLES.contains(&c)) {
                    self.role(user, CALLERS[c].1, ("space", &space)).await;
                }
                space
            }
            App => {
                self.create("/v3/apps", json!({"name": n, "relationships": {"space": {"data": {"guid": a1}}}})).await
            }
            Route => {
                let domain = &self.ids["shared"];
                let rel = json!({"space": {"data": {"guid": a1}}, "domain": {"data": {"guid": domain}}});
                self.create("/v3/routes", json!({"host": format!("f{n}"), "relationships": rel})).await
            }
            DomainOfA => {
                let rel = json!({"organization": {"data": {"guid": org_a}}});
                self.create("/v3/domains", json!({"name": format!("f{n}.authz.test"), "relationships": rel})).await
            }
            SharedDomain => self.create("/v3/domains", json!({"name": format!("f{n}.shared.test")})).await,
            Stack => self.create("/v3/stacks", json!({"name": format!("fresh-{n}")})).await,
            Quota => self.create("/v3/organization_quotas", json!({"name": format!("fresh-{n}")})).await,
            User => self.new_user().await,
            UserInA => {
                let user = self.new_user().await;
                self.role(&user, "organization_user", ("organization", org_a)).await;
                user
            }
            OrgRoleInA => self.role(&self.new_user().await, "organization_auditor", ("organization", org_a)).await,
            SpaceRoleInA1 => {
                let user = self.new_user().await;
                self.role(&user, "organization_user", ("organization", org_a)).await;
                self.role(&user, "space_auditor", ("space", a1)).await
            }
            ServiceInstance => self.upsi(a1, &n).await,
            Binding => {
                let si = self.upsi(a1, &n).await;
                self.bind(&self.ids["app_a"], &si).await
            }
            OwnRole => {
                let org = self.p.create_org(&self.admin, &format!("fresh-{n}")).await;
                let user = match &self.users[c] {
                    Some(u) => u.clone(),
                    None => self.new_user().await,
                };
                self.role(&user, "organization_auditor", ("organization", &org)).await
            }
        }
    }

    /// Runs one cell; answers what happened: the status letter, then ` (job STATE)` for
    /// a job that did not complete, and `+id`/`-id` for list checks that failed.
    async fn cell(&self, c: usize, what: &str, body: &str, fresh: Fresh, lists: &[(&str, &str)]) -> String {
        let fresh = self.fresh(fresh, c).await;
        let unique = self.unique();
        let (method, rest) = what.split_once(' ').unwrap();
        let path = self.fill(rest.split(" #").next().unwrap(), &fresh, &unique);
        let mut req =
            self.p.http.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", self.p.url));
        if let Some(t) = &self.tokens[c] {
            req = req.bearer_auth(t);
        }
        if body == "@droplet.tgz" {
            let tgz = droplet_tgz(&[("run.sh", b"#!/bin/sh\n")]);
            let (content_type, form) = multipart(&[("bits", Some("droplet.tgz"), &tgz)]);
            req = req.header("content-type", content_type).body(form);
        } else if !body.is_empty() {
            let json: Value = serde_json::from_str(&self.fill(body, &fresh, &unique)).expect("a row's body is JSON");
            req = req.json(&json);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let mut out = match status.as_u16() {
            200 => "O",
            201 => "C",
            202 => "A",
            204 => "E",
            401 => "X",
            403 => "F",
            404 => "N",
            422 => "U",
            _ => return format!("{status} {v}"),
        }
        .to_string();
        if let Some(job) = location
            .as_deref()
            .filter(|_| status == StatusCode::ACCEPTED)
            .and_then(|l| l.find("/v3/jobs/").map(|i| &l[i..]))
        {
            let state = self.p.wait_job(&self.admin, job).await["state"].clone();
            if state != "COMPLETE" {
                out += &format!(" (job {state})");
            }
        }
        if status == StatusCode::OK {
            let resources = v["resources"].as_array().cloned().unwrap_or_default();
            for (key, who) in lists {
                let want = who.as_bytes()[c] == b'y';
                let has = match *key {
                    "EMPTY" => want && resources.is_empty(),
                    key => resources.iter().any(|r| r["guid"] == self.ids[key].as_str()),
                };
                if want != has {
                    out += &format!(" {}{key}", if has { '+' } else { '-' });
                }
            }
        }
        out
    }

    async fn set_up() -> World {
        let p = TestPlatform::start().await;
        let admin = p.admin_token().await;
        let mut w = World {
            p,
            admin,
            tokens: vec![None; CALLERS.len()],
            users: vec![None; CALLERS.len()],
            ids: HashMap::new(),
            counter: AtomicUsize::new(0),
        };
        w.tokens[0] = Some(w.admin.clone());
        w.users[0] = Some(w.first(r#"/Users?filter=userName%20eq%20%22admin%22"#).await);
        // The admin client: a client_credentials token, and a CC user so it can hold roles.
        let resp =
            w.p.http.post(format!("{}/oauth/token", w.p.url)).basic_auth("admin", Some(&w.p.admin_client_secret));
        let resp = resp.form(&[("grant_type", "client_credentials")]).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "client_credentials grant");
        w.tokens[1] = Some(resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().into());
        w.users[1] = Some(w.create("/v3/users", json!({"guid": "admin"})).await);

        let org_a = w.p.create_org(&w.admin, "authz-a").await;
        let space_a1 = w.p.create_space(&w.admin, &org_a, "a1").await;
        let org_b = w.p.create_org(&w.admin, "authz-b").await;
        let space_b1 = w.p.create_space(&w.admin, &org_b, "b1").await;
        for (c, &(_, role)) in CALLERS.iter().enumerate().take(ANONYMOUS).skip(2) {
            let name = format!("authz-{c}");
            let user = w.p.create_user(&w.admin, &name, PASSWORD).await;
            let group = ["cloud_controller.admin_read_only", "cloud_controller.global_auditor"].get(c - 2);
            if let Some(group) = group {
                let id = w.first(&format!("/Groups?filter=displayName%20eq%20%22{group}%22")).await;
                let (s, v) =
                    w.p.post(&format!("/Groups/{id}/members"), &w.admin, json!({"value": user, "type": "USER"})).await;
                assert_eq!(s, StatusCode::CREATED, "add to {group}: {v}");
            }
            if ORG_ROLES.contains(&c) {
                w.role(&user, role, ("organization", &org_a)).await;
            }
            if SPACE_ROLES.contains(&c) {
                let in_org = w.role(&user, "organization_user", ("organization", &org_a)).await;
                let in_space = w.role(&user, role, ("space", &space_a1)).await;
                if role == "space_developer" {
                    w.ids.extend([("role_dev_org".into(), in_org), ("role_dev_space".into(), in_space)]);
                    w.ids.insert("dev".into(), user.clone());
                }
            }
            w.tokens[c] = Some(w.p.user_token(&name, PASSWORD).await);
            w.users[c] = Some(user);
        }
        let user_b = w.create("/v3/users", json!({"guid": "authz-user-b"})).await;
        let role_b = w.role(&user_b, "organization_user", ("organization", &org_b)).await;
        let norole = w.users[12].clone().unwrap();
        w.ids.extend(
            [("org_a", org_a), ("space_a1", space_a1), ("org_b", org_b), ("space_b1", space_b1)]
                .into_iter()
                .chain([("user_b", user_b), ("role_b", role_b), ("norole", norole)])
                .map(|(k, v)| (k.to_string(), v)),
        );
        let shared = w.first("/v3/domains?names=apps.localhost").await;
        w.ids.insert("shared".into(), shared.clone());
        for (x, org, space) in [("a", "org_a", "space_a1"), ("b", "org_b", "space_b1")] {
            let (org, space) = (w.ids[org].clone(), w.ids[space].clone());
            let rel = json!({"organization": {"data": {"guid": org}}});
            let domain =
                w.create("/v3/domains", json!({"name": format!("{x}.authz.test"), "relationships": rel})).await;
            let in_space = json!({"space": {"data": {"guid": space}}});
            let app = w.create("/v3/apps", json!({"name": format!("app-{x}"), "relationships": in_space})).await;
            let process = w.first(&format!("/v3/apps/{app}/processes")).await;
            let rel = json!({"space": {"data": {"guid": space}}, "domain": {"data": {"guid": shared}}});
            let route = w.create("/v3/routes", json!({"host": format!("route-{x}"), "relationships": rel})).await;
            let (e_org, e_app) = (
                w.first(&format!("/v3/audit_events?types=audit.organization.create&target_guids={org}")).await,
                w.first(&format!("/v3/audit_events?types=audit.app.create&target_guids={app}")).await,
            );
            let si = w.upsi(&space, x).await;
            let binding = w.bind(&app, &si).await;
            w.ids.extend(
                [("domain", domain), ("app", app), ("proc", process), ("route", route), ("event_org", e_org)]
                    .into_iter()
                    .chain([("event_app", e_app), ("si", si), ("bind", binding)])
                    .map(|(k, v)| (format!("{k}_{x}"), v)),
            );
        }
        // In app A: a bits package with its bits (READY) and a droplet awaiting its upload.
        let for_app = json!({"app": {"data": {"guid": w.ids["app_a"]}}});
        let package = w.create("/v3/packages", json!({"type": "bits", "relationships": for_app})).await;
        let zip = zip_of(&[("index.html", b"authz\n")], false);
        let (content_type, form) = multipart(&[("resources", None, b"[]"), ("bits", Some("package.zip"), &zip)]);
        let resp = w.p.http.post(format!("{}/v3/packages/{package}/upload", w.p.url)).bearer_auth(&w.admin);
        let resp = resp.header("content-type", content_type).body(form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "set-up: the package upload");
        w.ids.insert("package_a".into(), package);
        w.ids.insert("droplet_a".into(), w.create("/v3/droplets", json!({"relationships": for_app})).await);
        w.ids.insert("stack".into(), w.first("/v3/stacks?names=cflinuxfs4").await);
        let quota = w.first("/v3/organization_quotas?names=default").await;
        // So that the apps the rows make never meet the default quota's memory limit.
        let unlimited = json!({"apps": {"total_memory_in_mb": null}});
        let (s, v) = w
            .p
            .call(Method::PATCH, &format!("/v3/organization_quotas/{quota}"), Some(w.admin.as_str()), Some(unlimited))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        w.ids.insert("quota".into(), quota);
        // A job the admin started: deleting a route.
        let route = w.fresh(Route, 0).await;
        let resp =
            w.p.http.delete(format!("{}/v3/routes/{route}", w.p.url)).bearer_auth(&w.admin).send().await.unwrap();
        let job = resp.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_string();
        w.p.wait_job(&w.admin, &format!("/v3/jobs/{job}")).await;
        w.ids.insert("job".into(), job);
        w
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_every_caller_as_cloud_foundry_documents() {
    let w = World::set_up().await;
    let (mut cells, mut as_cf, mut known, mut failures) = (0, 0, Vec::new(), Vec::new());
    for &(expect, what, body, fresh, lists) in ROWS {
        assert_eq!(expect.chars().count(), CALLERS.len(), "row {what}: one letter per caller");
        for (c, (letter, name)) in CALLERS.iter().enumerate() {
            let want = &expect[c..c + 1];
            let got = w.cell(c, what, body, fresh, lists).await;
            cells += 1;
            match KNOWN.iter().find(|k| k.0 == what && k.1.contains(*letter)) {
                Some(k) if got == k.2 => known.push(format!("{what} — {name}: CF {want}, Hearth {got} ({})", k.3)),
                Some(k) => failures.push(format!("{what} — {name}: CF {want}, known Hearth {}, now {got}", k.2)),
                None if got == want => as_cf += 1,
                None => failures.push(format!("{what} — {name}: expected {want}, got {got}")),
            }
        }
    }
    for k in KNOWN {
        assert!(ROWS.iter().any(|r| r.1 == k.0), "KNOWN names no row: {}", k.0);
    }
    println!("{} rows × {} callers = {cells} cells: {as_cf} as CF documents", ROWS.len(), CALLERS.len());
    println!("{} known deviations:\n  {}", known.len(), known.join("\n  "));
    w.p.stop().await;
    assert!(failures.is_empty(), "{} cells answered otherwise:\n{}", failures.len(), failures.join("\n"));
}
