//! The `hearth` client commands: the cf CLI's job for Hearth (and for any
//! Cloud Foundry that speaks the V3 API and UAA).
//!
//! The binary flattens [`Command`] into its own subcommands and calls
//! [`run`]. Each command talks to the server exactly as the stock cf CLI
//! does: the root document for discovery, UAA for tokens and SCIM users,
//! CF V3 for orgs, spaces, users and roles. State between runs lives in
//! `$HEARTH_HOME/config.json` (see [`config`]).
//!
//! Layout: [`session`] sends authenticated requests (token refresh,
//! pagination, jobs); [`uaa`] and [`root`] are the auth and discovery edges;
//! [`commands`] holds one module per command group; [`output`] prints tables
//! for people and JSON for machines.

pub mod api_error;
pub mod commands;
pub mod config;
pub mod jwt;
pub mod output;
pub mod prompt;
pub mod resources;
pub mod roles;
pub mod root;
pub mod session;
pub mod uaa;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use commands::{
    api, app_data, apps, buildpacks, curl, lifecycle, login, logs, members, node, orgs, platform, push,
    roles as role_commands, routes, services, spaces, target, tasks, users,
};
use session::Session;

/// The client commands of `hearth`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or set the API endpoint
    Api(api::ApiArgs),
    /// Log in as a user (asks for what is missing)
    Login(login::LoginArgs),
    /// Authenticate without prompts, as a user or (--client-credentials) a client
    Auth(login::AuthArgs),
    /// Log out and forget the target
    Logout(login::LogoutArgs),
    /// Show or set the targeted org and space
    Target(target::TargetArgs),
    /// List the orgs you can see
    Orgs(orgs::OrgsArgs),
    /// Show one org
    Org(orgs::OrgArgs),
    /// Create an org (a non-admin creator becomes its manager)
    CreateOrg(orgs::CreateOrgArgs),
    /// Delete an org with everything in it
    DeleteOrg(orgs::DeleteOrgArgs),
    /// List the spaces of the targeted org
    Spaces(spaces::SpacesArgs),
    /// Show one space of the targeted org
    Space(spaces::SpaceArgs),
    /// Create a space (and make yourself its manager and developer)
    CreateSpace(spaces::CreateSpaceArgs),
    /// Delete a space with everything in it
    DeleteSpace(spaces::DeleteSpaceArgs),
    /// Create a user (admins only)
    CreateUser(users::CreateUserArgs),
    /// Delete a user (admins only)
    DeleteUser(users::DeleteUserArgs),
    /// Give a user a role in an org (OrgManager, BillingManager, OrgAuditor)
    SetOrgRole(role_commands::OrgRoleArgs),
    /// Give a user a role in a space (SpaceManager, SpaceDeveloper, SpaceAuditor, SpaceSupporter)
    SetSpaceRole(role_commands::SpaceRoleArgs),
    /// Take an org role away from a user
    UnsetOrgRole(role_commands::OrgRoleArgs),
    /// Take a space role away from a user
    UnsetSpaceRole(role_commands::SpaceRoleArgs),
    /// List the users of an org by role
    OrgUsers(members::OrgUsersArgs),
    /// List the users of a space by role
    SpaceUsers(members::SpaceUsersArgs),
    /// Push an app: apply its manifest, upload its bits or docker image, stage and start it
    Push(Box<push::PushArgs>),
    /// List the apps of the targeted space
    Apps(apps::AppsArgs),
    /// Show an app's state, instances, routes and droplet
    App(apps::AppArgs),
    /// Start an app (staging its newest package first if needed)
    Start(lifecycle::AppNameArgs),
    /// Stop an app
    Stop(lifecycle::AppNameArgs),
    /// Stop and start an app
    Restart(lifecycle::RestartArgs),
    /// Stage an app's newest package again and restart it
    Restage(lifecycle::AppNameArgs),
    /// Change an app's instances, memory or disk (or show its scale)
    Scale(lifecycle::ScaleArgs),
    /// Delete an app (and with -r its routes)
    Delete(lifecycle::DeleteArgs),
    /// Show an app's recent log lines or follow new ones
    Logs(logs::LogsArgs),
    /// Run a one-off task from an app's droplet
    RunTask(tasks::RunTaskArgs),
    /// List an app's tasks
    Tasks(tasks::TasksArgs),
    /// Cancel a running task of an app
    TerminateTask(tasks::TerminateTaskArgs),
    /// Show an app's environment
    Env(app_data::EnvArgs),
    /// Set an environment variable of an app
    SetEnv(app_data::SetEnvArgs),
    /// Write an app's current settings as a manifest file
    CreateAppManifest(app_data::CreateManifestArgs),
    /// Remove an environment variable of an app
    UnsetEnv(app_data::UnsetEnvArgs),
    /// List an app's droplets
    Droplets(app_data::ListArgs),
    /// List an app's packages
    Packages(app_data::ListArgs),
    /// List the routes of the targeted space
    Routes(routes::RoutesArgs),
    /// Create a route in the targeted space
    CreateRoute(routes::RouteArgs),
    /// Delete a route
    DeleteRoute(routes::DeleteRouteArgs),
    /// Map a route to an app (creating the route if needed)
    MapRoute(routes::MapRouteArgs),
    /// Unmap a route from an app
    UnmapRoute(routes::MapRouteArgs),
    /// Create a user-provided service instance (credentials, tags, syslog drain, route service)
    #[command(name = "create-user-provided-service", visible_alias = "cups")]
    CreateUserProvidedService(services::CreateUpsArgs),
    /// Change a user-provided service instance (bound apps see it after a restage)
    #[command(name = "update-user-provided-service", visible_alias = "uups")]
    UpdateUserProvidedService(services::CreateUpsArgs),
    /// List the service instances of the targeted space
    #[command(visible_alias = "s")]
    Services(services::ServicesArgs),
    /// Show a service instance and the apps bound to it
    Service(services::ServiceArgs),
    /// Bind a service instance to an app (it sees it in VCAP_SERVICES after a restage)
    #[command(visible_alias = "bs")]
    BindService(services::BindArgs),
    /// Unbind a service instance from an app
    #[command(visible_alias = "us")]
    UnbindService(services::UnbindArgs),
    /// Delete a service instance
    #[command(visible_alias = "ds")]
    DeleteService(services::DeleteServiceArgs),
    /// Download an app's droplet (its current one, or --droplet GUID)
    DownloadDroplet(platform::DownloadDropletArgs),
    /// Show an app's recent events
    Events(platform::EventsArgs),
    /// List the stacks
    Stacks(platform::JsonArgs),
    /// List the domains the targeted org can use
    Domains(platform::JsonArgs),
    /// List the buildpacks in detection order
    Buildpacks(buildpacks::BuildpacksArgs),
    /// Create a buildpack from a directory or zip at a position (admins only)
    CreateBuildpack(buildpacks::CreateBuildpackArgs),
    /// Change a buildpack's bits, position, state, lock or name (admins only)
    UpdateBuildpack(buildpacks::UpdateBuildpackArgs),
    /// Delete a buildpack (admins only)
    DeleteBuildpack(buildpacks::DeleteBuildpackArgs),
    /// Send an authenticated request to the API and print the answer
    Curl(curl::CurlArgs),
    /// Print a fresh access token (for use in other tools)
    OauthToken(login::OauthTokenArgs),
    /// Operators: the containers on the server's machine (admins only)
    #[command(subcommand)]
    Containers(node::ContainersCommand),
    /// Operators: the server's image store (admins only)
    #[command(subcommand)]
    Images(node::ImagesCommand),
}

/// Runs one client command; prints the error and fails when it does.
pub fn run(cmd: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err:#}");
            eprintln!("FAILED");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Command) -> Result<()> {
    let mut session = Session::load()?;
    let s = &mut session;
    match cmd {
        Command::Api(args) => api::run(s, args).await,
        Command::Login(args) => login::login(s, args).await,
        Command::Auth(args) => login::auth(s, args).await,
        Command::Logout(args) => login::logout(s, args).await,
        Command::Target(args) => target::run(s, args).await,
        Command::Orgs(args) => orgs::orgs(s, args).await,
        Command::Org(args) => orgs::org(s, args).await,
        Command::CreateOrg(args) => orgs::create_org(s, args).await,
        Command::DeleteOrg(args) => orgs::delete_org(s, args).await,
        Command::Spaces(args) => spaces::spaces(s, args).await,
        Command::Space(args) => spaces::space(s, args).await,
        Command::CreateSpace(args) => spaces::create_space(s, args).await,
        Command::DeleteSpace(args) => spaces::delete_space(s, args).await,
        Command::CreateUser(args) => users::create_user(s, args).await,
        Command::DeleteUser(args) => users::delete_user(s, args).await,
        Command::SetOrgRole(args) => role_commands::set_org_role(s, args).await,
        Command::SetSpaceRole(args) => role_commands::set_space_role(s, args).await,
        Command::UnsetOrgRole(args) => role_commands::unset_org_role(s, args).await,
        Command::UnsetSpaceRole(args) => role_commands::unset_space_role(s, args).await,
        Command::OrgUsers(args) => members::org_users(s, args).await,
        Command::SpaceUsers(args) => members::space_users(s, args).await,
        Command::Push(args) => push::push(s, *args).await,
        Command::Apps(args) => apps::apps(s, args).await,
        Command::App(args) => apps::app(s, args).await,
        Command::Start(args) => lifecycle::start(s, args).await,
        Command::Stop(args) => lifecycle::stop(s, args).await,
        Command::Restart(args) => lifecycle::restart(s, args).await,
        Command::Restage(args) => lifecycle::restage(s, args).await,
        Command::Scale(args) => lifecycle::scale(s, args).await,
        Command::Delete(args) => lifecycle::delete(s, args).await,
        Command::Logs(args) => logs::logs(s, args).await,
        Command::RunTask(args) => tasks::run_task(s, args).await,
        Command::Tasks(args) => tasks::tasks(s, args).await,
        Command::TerminateTask(args) => tasks::terminate_task(s, args).await,
        Command::Env(args) => app_data::env(s, args).await,
        Command::SetEnv(args) => app_data::set_env(s, args).await,
        Command::CreateAppManifest(args) => app_data::create_manifest(s, args).await,
        Command::UnsetEnv(args) => app_data::unset_env(s, args).await,
        Command::Droplets(args) => app_data::droplets(s, args).await,
        Command::Packages(args) => app_data::packages(s, args).await,
        Command::Routes(args) => routes::routes(s, args).await,
        Command::CreateRoute(args) => routes::create_route(s, args).await,
        Command::DeleteRoute(args) => routes::delete_route(s, args).await,
        Command::MapRoute(args) => routes::map_route(s, args).await,
        Command::UnmapRoute(args) => routes::unmap_route(s, args).await,
        Command::CreateUserProvidedService(args) => services::create_ups(s, args).await,
        Command::UpdateUserProvidedService(args) => services::update_ups(s, args).await,
        Command::Services(args) => services::services(s, args).await,
        Command::Service(args) => services::service(s, args).await,
        Command::BindService(args) => services::bind_service(s, args).await,
        Command::UnbindService(args) => services::unbind_service(s, args).await,
        Command::DeleteService(args) => services::delete_service(s, args).await,
        Command::DownloadDroplet(args) => platform::download_droplet(s, args).await,
        Command::Events(args) => platform::events(s, args).await,
        Command::Stacks(args) => platform::stacks(s, args).await,
        Command::Domains(args) => platform::domains(s, args).await,
        Command::Buildpacks(args) => buildpacks::buildpacks(s, args).await,
        Command::CreateBuildpack(args) => buildpacks::create_buildpack(s, args).await,
        Command::UpdateBuildpack(args) => buildpacks::update_buildpack(s, args).await,
        Command::DeleteBuildpack(args) => buildpacks::delete_buildpack(s, args).await,
        Command::Curl(args) => curl::run(s, args).await,
        Command::OauthToken(args) => login::oauth_token(s, args).await,
        Command::Containers(command) => node::containers(s, command).await,
        Command::Images(command) => node::images(s, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Top {
        #[command(subcommand)]
        command: Command,
    }

    #[test]
    fn command_tree_is_valid() {
        use clap::CommandFactory;
        Top::command().debug_assert();
    }

    #[test]
    fn parses_cf_style_arguments() {
        let top =
            Top::try_parse_from(["hearth", "login", "-a", "http://x", "-u", "admin", "-p", "pw", "-o", "o"]).unwrap();
        let Command::Login(args) = top.command else { panic!("not login") };
        assert_eq!(args.username.as_deref(), Some("admin"));
        assert_eq!(args.org.as_deref(), Some("o"));

        let top = Top::try_parse_from([
            "hearth", "curl", "/v3/apps", "-X", "POST", "-H", "A: b", "-H", "C: d", "-d", "@f", "-i",
        ])
        .unwrap();
        let Command::Curl(args) = top.command else { panic!("not curl") };
        assert_eq!(args.headers.len(), 2);
        assert!(args.include);

        let top = Top::try_parse_from(["hearth", "set-space-role", "bob", "o", "s", "SpaceDeveloper"]).unwrap();
        assert!(matches!(top.command, Command::SetSpaceRole(_)));
        assert!(Top::try_parse_from(["hearth", "delete-org", "o", "-f"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "oauth-token"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "auth", "admin", "secret", "--client-credentials"]).is_ok());
        let top =
            Top::try_parse_from(["hearth", "containers", "run", "--image", "r/i:1", "-e", "A=b", "--", "ls", "-l"])
                .unwrap();
        let Command::Containers(node::ContainersCommand::Run(args)) = top.command else { panic!("not run") };
        assert_eq!(args.command, ["ls", "-l"]);
        assert_eq!(args.env, ["A=b"]);
        assert!(Top::try_parse_from(["hearth", "images", "pull", "localhost:5000/busybox:1"]).is_ok());
    }

    #[test]
    fn parses_app_commands() {
        let top = Top::try_parse_from([
            "hearth",
            "push",
            "web",
            "-b",
            "a",
            "-b",
            "b",
            "-i",
            "2",
            "-m",
            "64M",
            "-n",
            "www",
            "-d",
            "example.org",
            "--var",
            "x=1",
            "--var",
            "y=2",
            "--vars-file",
            "v.yml",
            "-u",
            "http",
            "--endpoint",
            "/h",
            "-t",
            "30",
        ])
        .unwrap();
        let Command::Push(args) = top.command else { panic!("not push") };
        assert_eq!(args.name.as_deref(), Some("web"));
        assert_eq!(args.buildpacks, ["a", "b"]);
        assert_eq!(args.vars, ["x=1", "y=2"]);
        assert_eq!(args.hostname.as_deref(), Some("www"));
        assert_eq!(args.timeout, Some(30));
        let top = Top::try_parse_from(["hearth", "push", "-o", "busybox:1", "--docker-username", "u"]).unwrap();
        let Command::Push(args) = top.command else { panic!("not push") };
        assert_eq!(args.docker_image.as_deref(), Some("busybox:1"));
        assert!(Top::try_parse_from(["hearth", "push", "-f", "m.yml", "--no-manifest"]).is_err());
        assert!(Top::try_parse_from(["hearth", "scale", "web", "-i", "3", "-m", "1G", "-k", "2G", "-f"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "delete", "web", "-r", "-f"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "logs", "web", "--recent"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "logs", "web", "--json"]).is_err(), "--json needs --recent");
        assert!(
            Top::try_parse_from(["hearth", "map-route", "web", "example.org", "--hostname", "h", "--path", "/p"])
                .is_ok()
        );
        assert!(Top::try_parse_from(["hearth", "set-env", "web", "K", "V"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "unset-env", "web", "K"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "delete-route", "example.org", "-n", "h", "-f"]).is_ok());
    }

    #[test]
    fn parses_service_commands_and_cf_aliases() {
        let top = Top::try_parse_from(["hearth", "cups", "db", "-p", "{}", "-t", "a,b", "-l", "syslog://h"]).unwrap();
        let Command::CreateUserProvidedService(args) = top.command else { panic!("not cups") };
        assert_eq!((args.name.as_str(), args.tags.as_deref()), ("db", Some("a,b")));
        assert!(Top::try_parse_from(["hearth", "uups", "db", "-r", "https://x"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "services", "--json"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "service", "db", "--guid"]).is_ok());
        let top = Top::try_parse_from(["hearth", "bs", "web", "db", "--binding-name", "primary"]).unwrap();
        let Command::BindService(args) = top.command else { panic!("not bind-service") };
        assert_eq!(args.binding_name.as_deref(), Some("primary"));
        assert!(Top::try_parse_from(["hearth", "unbind-service", "web", "db"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "delete-service", "db", "-f"]).is_ok());
        assert!(Top::try_parse_from(["hearth", "bind-service", "web"]).is_err());
    }

    #[test]
    fn parses_buildpack_and_droplet_commands() {
        let top = Top::try_parse_from(["hearth", "create-buildpack", "bp", "./bp", "2", "--disable"]).unwrap();
        let Command::CreateBuildpack(args) = top.command else { panic!("not create-buildpack") };
        assert_eq!((args.position, args.disable), (2, true));
        assert!(Top::try_parse_from(["hearth", "create-buildpack", "bp", "./bp"]).is_err(), "position is required");
        let top = Top::try_parse_from([
            "hearth",
            "update-buildpack",
            "bp",
            "-p",
            "x.zip",
            "-i",
            "1",
            "--disable",
            "--lock",
            "--rename",
            "nb",
        ])
        .unwrap();
        let Command::UpdateBuildpack(args) = top.command else { panic!("not update-buildpack") };
        assert_eq!((args.position, args.rename.as_deref()), (Some(1), Some("nb")));
        assert!(Top::try_parse_from(["hearth", "update-buildpack", "bp", "--enable", "--disable"]).is_err());
        assert!(Top::try_parse_from(["hearth", "update-buildpack", "bp", "--lock", "--unlock"]).is_err());
        assert!(Top::try_parse_from(["hearth", "delete-buildpack", "bp", "-f"]).is_ok());
        let top =
            Top::try_parse_from(["hearth", "download-droplet", "web", "--droplet", "g", "--path", "/tmp"]).unwrap();
        let Command::DownloadDroplet(args) = top.command else { panic!("not download-droplet") };
        assert_eq!((args.droplet.as_deref(), args.path.as_deref()), (Some("g"), Some("/tmp")));
        let cmds: [&[&str]; 4] = [
            &["hearth", "stacks", "--json"],
            &["hearth", "domains"],
            &["hearth", "events", "web"],
            &["hearth", "buildpacks"],
        ];
        for cmd in cmds {
            assert!(Top::try_parse_from(cmd).is_ok(), "{cmd:?}");
        }
    }
}
