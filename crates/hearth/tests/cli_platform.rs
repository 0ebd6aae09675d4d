//! End to end, as root: the platform commands run as a user would against a real
//! `hearth server` — `stacks`, `domains`, the buildpack commands (create from a directory,
//! update position/state/lock/name, refuse bits while locked, delete and renumber),
//! `download-droplet` of a pushed app and `events`. Bad input fails and changes nothing.

mod common;

use common::cli::Server;
use serde_json::Value;

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// (name, position) of every buildpack, in position order.
fn positions(server: &Server) -> Vec<(String, i64)> {
    let all = json_of(&server.hearth(&["buildpacks", "--json"]).ok());
    all.as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].as_str().unwrap().to_string(), b["position"].as_i64().unwrap()))
        .collect()
}

#[test]
fn platform_buildpack_and_droplet_commands_work_as_cf_does() {
    let server = Server::start_with(&["--node-dir", "{root}/node", "--app-domain", "apps.test.internal"]);
    server.sign_in_to_acme_dev();

    let out = server.hearth(&["stacks"]).ok();
    assert!(out.contains("Getting stacks as admin...") && out.contains("cflinuxfs4"), "{out}");
    let stacks = json_of(&server.hearth(&["stacks", "--json"]).ok());
    assert!(stacks.as_array().unwrap().iter().any(|s| s["name"] == "cflinuxfs4"), "{stacks}");
    let out = server.hearth(&["domains"]).ok();
    let line = out.lines().find(|l| l.starts_with("apps.test.internal")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("shared"), "{out}");

    // Buildpacks: a directory becomes a zip; position 1 moves the others down.
    let before = positions(&server);
    assert_eq!(before.last().map(|b| b.0.as_str()), Some("binary_buildpack"), "{before:?}");
    let dir = server.root.join("shell_bp");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/detect"), "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::write(dir.join("bin/compile"), "#!/bin/sh\nexit 1\n").unwrap();
    let err = server.hearth(&["create-buildpack", "bad_bp", "/nonexistent/bp", "1"]).fails();
    assert!(err.contains("/nonexistent/bp"), "{err}");
    assert_eq!(positions(&server), before, "a bad path creates nothing");
    let out = server.hearth(&["create-buildpack", "shell_bp", dir.to_str().unwrap(), "1"]).ok();
    assert!(out.contains("Creating buildpack shell_bp as admin...") && out.contains("Uploading buildpack"), "{out}");
    let table = server.hearth(&["buildpacks"]).ok();
    let row = table.lines().find(|l| l.contains("shell_bp")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.starts_with('1') && row.contains("READY") && row.contains("shell_bp.zip"), "{table}");
    assert_eq!(positions(&server).len(), before.len() + 1);

    let updated =
        json_of(&server.hearth(&["update-buildpack", "shell_bp", "-i", "2", "--disable", "--lock", "--json"]).ok());
    assert_eq!(
        (updated["position"].as_i64(), &updated["enabled"], &updated["locked"]),
        (Some(2), &Value::Bool(false), &Value::Bool(true))
    );
    let err = server.hearth(&["update-buildpack", "shell_bp", "-p", dir.to_str().unwrap()]).fails();
    assert!(err.contains("locked"), "{err}");
    let renamed = json_of(
        &server.hearth(&["update-buildpack", "shell_bp", "--rename", "sh_bp", "--unlock", "--enable", "--json"]).ok(),
    );
    assert_eq!(
        (&renamed["name"], &renamed["enabled"], &renamed["locked"]),
        (&Value::from("sh_bp"), &Value::Bool(true), &Value::Bool(false))
    );
    let err = server.hearth(&["update-buildpack", "nope_bp", "-i", "1"]).fails();
    assert!(err.contains("Buildpack 'nope_bp' not found."), "{err}");

    server.hearth(&["delete-buildpack", "sh_bp", "-f"]).ok();
    let after = positions(&server);
    assert_eq!(
        after.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
        before.iter().map(|b| b.0.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        after.iter().map(|b| b.1).collect::<Vec<_>>(),
        (1..=after.len() as i64).collect::<Vec<_>>(),
        "renumbered"
    );
    let run = server.hearth(&["delete-buildpack", "sh_bp", "-f"]);
    assert!(
        run.ok().contains("OK") && run.stderr().contains("Buildpack 'sh_bp' does not exist."),
        "{}",
        run.describe()
    );

    // A pushed app's droplet downloads; its events show what happened.
    let app_dir = server.root.join("web");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(app_dir.join("Procfile"), "web: exec busybox httpd -f -p $PORT -h .\n").unwrap();
    std::fs::write(app_dir.join("index.html"), "hi\n").unwrap();
    server.hearth(&["push", "web", "-p", app_dir.to_str().unwrap(), "-b", "binary_buildpack", "-m", "64M"]).ok();
    let err = server.hearth(&["download-droplet", "nope"]).fails();
    assert!(err.contains("nope"), "{err}");
    let out_dir = server.root.join("downloads");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dir_arg = out_dir.to_string_lossy().into_owned();
    let out = server.hearth(&["download-droplet", "web", "--path", &dir_arg]).ok();
    assert!(
        out.contains("Downloading current droplet for app web") && out.contains("Droplet downloaded successfully at"),
        "{out}"
    );
    let files: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("droplet_") && name.ends_with(".tgz"), "{name}");
    let bytes = std::fs::read(&files[0]).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip file");
    let droplet_guid = name.trim_start_matches("droplet_").trim_end_matches(".tgz").to_string();
    // A download that fails leaves nothing behind (the file is streamed to a temp file
    // that is renamed only once complete).
    let err = server.hearth(&["download-droplet", "web", "--droplet", "no-such-droplet", "--path", &dir_arg]).fails();
    assert!(err.contains("not found"), "{err}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1, "only the first download is there");
    let file = server.root.join("named.tgz");
    server.hearth(&["download-droplet", "web", "--droplet", &droplet_guid, "--path", file.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    let out = server.hearth(&["events", "web"]).ok();
    assert!(out.contains("Getting events for app web in org acme / space dev as admin..."), "{out}");
    assert!(out.contains("audit.app.create") && out.contains("audit.app.droplet.download"), "{out}");
    let events = json_of(&server.hearth(&["events", "web", "--json"]).ok());
    assert_eq!(events[0]["type"], "audit.app.droplet.download", "newest first: {events}");
    server.hearth(&["delete", "web", "-f"]).ok();
}
