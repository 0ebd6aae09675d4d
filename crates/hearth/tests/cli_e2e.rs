//! End to end: the real `hearth server` and the `hearth` client commands, as a
//! user would run them (stdout, stderr, exit codes).

mod common;

use common::cli::{ADMIN_PASSWORD, Server};
/// The table rows (lines) of a command's stdout, trimmed.
fn lines(stdout: &str) -> Vec<&str> {
    stdout.lines().map(str::trim).collect()
}

fn json_names(stdout: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array:\n{stdout}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_user_manages_orgs_spaces_users_and_roles() {
    let server = Server::start();

    // Target the API and log in as admin.
    let out = server.hearth(&["api", &server.url]).ok();
    assert!(out.contains("API endpoint:") && out.contains(&server.url), "{out}");
    let out = server.hearth(&["login", "-u", "admin", "-p", ADMIN_PASSWORD]).ok();
    assert!(out.contains("OK"), "{out}");
    assert!(lines(&out).iter().any(|l| l.starts_with("user:") && l.ends_with("admin")), "{out}");

    // Orgs: create, list as a table and as JSON, target.
    let out = server.hearth(&["create-org", "e2e-org"]).ok();
    assert!(out.contains("Creating org e2e-org as admin...") && out.contains("OK"), "{out}");
    server.hearth(&["create-org", "other-org"]).ok();
    let out = server.hearth(&["orgs"]).ok();
    let rows = lines(&out);
    assert!(rows.contains(&"name"), "{out}");
    assert!(rows.contains(&"e2e-org") && rows.contains(&"other-org"), "{out}");
    let names = json_names(&server.hearth(&["orgs", "--json"]).ok());
    assert!(names.contains(&"e2e-org".to_owned()), "{names:?}");
    let out = server.hearth(&["target", "-o", "e2e-org"]).ok();
    assert!(lines(&out).iter().any(|l| l.starts_with("org:") && l.ends_with("e2e-org")), "{out}");

    // A missing org is explained, with what to do next.
    let err = server.hearth(&["target", "-o", "no-such-org"]).fails();
    assert!(err.contains("no-such-org") && err.contains("hearth orgs"), "{err}");

    // Spaces.
    let out = server.hearth(&["create-space", "dev"]).ok();
    assert!(out.contains("Creating space dev in org e2e-org as admin...") && out.contains("OK"), "{out}");
    let out = server.hearth(&["spaces"]).ok();
    assert!(lines(&out).contains(&"dev"), "{out}");

    // A new user with a space role.
    let out = server.hearth(&["create-user", "bob", "bob-password"]).ok();
    assert!(out.contains("OK"), "{out}");
    server.hearth(&["set-space-role", "bob", "e2e-org", "dev", "SpaceDeveloper"]).ok();
    let out = server.hearth(&["space-users", "e2e-org", "dev"]).ok();
    let after_heading = out.split("SPACE DEVELOPER").nth(1).unwrap_or_else(|| panic!("no SPACE DEVELOPER:\n{out}"));
    let developers = after_heading.split("\n\n").next().unwrap_or_default();
    assert!(developers.contains("bob"), "{out}");

    // The new user sees only the org they belong to.
    let bob_home = server.root.join("bob-home");
    server.hearth_in(&bob_home, &["api", &server.url]).ok();
    let out = server.hearth_in(&bob_home, &["login", "-u", "bob", "-p", "bob-password"]).ok();
    assert!(out.contains("Targeted org e2e-org"), "{out}");
    let out = server.hearth_in(&bob_home, &["orgs"]).ok();
    let rows = lines(&out);
    assert!(rows.contains(&"e2e-org") && !rows.contains(&"other-org"), "{out}");
    let names = json_names(&server.hearth_in(&bob_home, &["orgs", "--json"]).ok());
    assert_eq!(names, vec!["e2e-org".to_owned()]);

    // curl prints the body.
    let out = server.hearth(&["curl", "/v3/info"]).ok();
    let info: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("curl /v3/info is not JSON ({e}):\n{out}"));
    assert!(info.is_object(), "{out}");

    // Clean up through the CLI.
    let out = server.hearth(&["delete-space", "dev", "-f"]).ok();
    assert!(out.contains("OK"), "{out}");
    let out = server.hearth(&["spaces"]).ok();
    assert!(!lines(&out).contains(&"dev"), "{out}");
    server.hearth(&["delete-org", "e2e-org", "-f"]).ok();
    server.hearth(&["delete-org", "other-org", "-f"]).ok();
    let out = server.hearth(&["orgs"]).ok();
    assert!(!lines(&out).contains(&"e2e-org") && !lines(&out).contains(&"other-org"), "{out}");

    // Logging out means commands need a login again.
    let out = server.hearth(&["logout"]).ok();
    assert!(out.contains("OK"), "{out}");
    let err = server.hearth(&["orgs"]).fails();
    assert!(err.contains("Not logged in") && err.contains("hearth login"), "{err}");

    // A wrong password fails with a message that says what to do.
    let run = server.hearth(&["login", "-u", "admin", "-p", "wrong-password"]);
    let err = run.fails();
    assert!(err.contains("Unable to authenticate") && err.contains("hearth login"), "{err}");
}
