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

#[test]
fn service_commands_work_as_cf_does() {
    let server = Server::start();
    server.sign_in_to_acme_dev();
    let space = server.hearth(&["space", "dev", "--guid"]).ok().trim().to_string();
    let app = format!(r#"{{"name":"web","relationships":{{"space":{{"data":{{"guid":"{space}"}}}}}}}}"#);
    server.hearth(&["curl", "/v3/apps", "-X", "POST", "-d", &app]).ok();

    let out = server.hearth(&["cups", "db", "-p", r#"{"uri":"postgres://u:p@h/d"}"#, "-t", "sql, pg"]).ok();
    assert!(out.contains("Creating user provided service db in org acme / space dev as admin...\nOK"), "{out}");
    // Credentials from a file; a bad -p fails before anything is sent.
    let creds = server.root.join("creds.json");
    std::fs::write(&creds, r#"{"host":"cache.internal"}"#).unwrap();
    server.hearth(&["create-user-provided-service", "cache", "-p", creds.to_str().unwrap()]).ok();
    let err = server.hearth(&["cups", "broken", "-p", "{not json"]).fails();
    assert!(err.contains("Invalid configuration provided for -p flag"), "{err}");
    let err = server.hearth(&["cups", "db", "-p", "{}"]).fails();
    assert!(err.contains("The service instance name is taken: db"), "{err}");

    let out = server.hearth(&["bind-service", "web", "db", "--binding-name", "primary"]).ok();
    assert!(out.contains("Binding service instance db to app web in org acme / space dev as admin..."), "{out}");
    assert!(out.contains("TIP: Use 'hearth restage web'"), "{out}");
    let out = server.hearth(&["bs", "web", "db"]).ok();
    assert!(out.contains("App web is already bound to service instance db."), "{out}");
    let out = server.hearth(&["services"]).ok();
    let rows = lines(&out);
    assert!(rows.iter().any(|l| l.starts_with("name") && l.contains("bound apps")), "{out}");
    let db = rows.iter().find(|l| l.starts_with("db ")).unwrap_or_else(|| panic!("{out}"));
    assert!(db.contains("user-provided") && db.contains("web") && db.contains("create succeeded"), "{out}");
    let listed: serde_json::Value = serde_json::from_str(&server.hearth(&["services", "--json"]).ok()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let out = server.hearth(&["service", "db"]).ok();
    assert!(out.contains("tags:") && out.contains("sql, pg") && out.contains("primary"), "{out}");
    let env = server.hearth(&["env", "web"]).ok();
    assert!(env.contains("postgres://u:p@h/d"), "the env shows the binding: {env}");

    let out = server.hearth(&["uups", "db", "-p", r#"{"uri":"mysql://x@y/z"}"#]).ok();
    assert!(out.contains("Updating user provided service db") && out.contains("TIP: Use 'hearth restage'"), "{out}");
    let out = server.hearth(&["uups", "db"]).ok();
    assert!(out.contains("No flags specified. No changes were made."), "{out}");
    let err = server.hearth(&["delete-service", "db", "-f"]).fails();
    assert!(err.contains("service_bindings"), "a bound instance stays: {err}");
    let out = server.hearth(&["unbind-service", "web", "db"]).ok();
    assert!(out.contains("Unbinding app web from service db in org acme / space dev as admin...\nOK"), "{out}");
    let run = server.hearth(&["unbind-service", "web", "db"]);
    assert!(run.ok().contains("OK") && run.stderr().contains("Binding between db and web did not exist"));
    server.hearth(&["delete-service", "db", "-f"]).ok();
    let out = server.hearth(&["ds", "db", "-f"]).ok();
    assert!(out.contains("Service instance db did not exist."), "{out}");
    let names: Vec<String> = json_names(&server.hearth(&["services", "--json"]).ok());
    assert_eq!(names, ["cache"]);
    let help = server.hearth(&["cups", "--help"]).ok();
    assert!(help.contains("-p") && help.contains("-t") && help.contains("-l"), "{help}");
}
