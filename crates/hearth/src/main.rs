//! `hearth`: the whole platform (`hearth server`) and its command-line client in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth::config::{ServerArgs, ServerConfig};
use hearth::server::Server;

// The API's work is many small allocations (rows, strings, JSON): mimalloc handles them
// markedly faster than glibc's allocator (measured with hearth-bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hearth", version, about = "A Cloud Foundry application runtime in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run the whole platform (API, auth, ...) in this process
    Server(Box<ServerArgs>),
    #[command(flatten)]
    Client(hearth_cli::Command),
    /// Internal: one container-runtime operation, in a single-threaded process
    #[command(name = "container-helper", hide = true)]
    ContainerHelper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Internal: an image-store operation inside a rootless store's user namespace
    #[command(name = "images-helper", hide = true)]
    ImagesHelper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Top::Server(args) => serve(*args),
        Top::Client(cmd) => hearth_cli::run(cmd),
        // No tokio runtime here: libcontainer forks, which needs a single-threaded process.
        Top::ContainerHelper { args } => hearth_containers::helper::main(&args),
        Top::ImagesHelper { args } => hearth_images::helper_main(&args),
    }
}

fn serve(args: ServerArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_server(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth server failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let config = ServerConfig::resolve(&args)?;
    if args.roles == "cell" {
        return run_cell(&args, config).await;
    }
    let data_dir = config.data_dir.clone();
    let app_domain = config.app_domain.clone();
    let server = Server::start(config).await?;
    println!("Hearth is running.");
    println!("  API endpoint:   {}", server.url);
    if let Some(https) = server.https_addr {
        println!("  HTTPS:          {https} (apps and the API by host name, certificates by SNI)");
    }
    println!("  Data directory: {}", data_dir.display());
    if server.first_start {
        println!("  Admin user:     admin");
        println!(
            "  Admin password: {}  (shown once; kept in {}/admin-credentials.toml)",
            server.admin_password,
            data_dir.display()
        );
    } else {
        println!("  Admin credentials: {}/admin-credentials.toml", data_dir.display());
    }
    println!("Log in with:  hearth login -a {} -u admin   (or: cf login -a {} -u admin)", server.url, server.url);
    if let Some((addr, token)) = &server.cell_endpoint {
        println!("Cells on other machines join with:");
        println!("  hearth server --roles cell --join https://{addr} --token {token} --advertise-address THEIR_IP");
    }
    if server.first_start && server.node.is_ok() && !args.no_sample_app {
        let front = server.addr.to_string();
        println!("Your first app is being pushed: {}", hearth::sample_app::url(&app_domain, &front));
        tokio::spawn(hearth::sample_app::push(server.url.clone(), server.admin_password.clone(), data_dir.clone()));
    }
    let token = server.shutdown_token();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        token.cancel();
    });
    server.wait().await
}

/// `--roles cell`: this machine's containers as a cell of the server at `--join`, until
/// SIGTERM or SIGINT, which drains it (its instances start elsewhere first).
async fn run_cell(args: &ServerArgs, config: ServerConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    let node_config = config.node.clone().context("a cell runs containers: drop --no-containers")?;
    let node =
        std::sync::Arc::new(hearth_cell::Node::open(&node_config).await.context("cannot open this machine's node")?);
    let mut cell = hearth::server::cell_config(&node);
    if let Some(id) = &args.cell_id {
        cell.id = id.clone();
    }
    cell.advertise_address = args.advertise_address;
    let id = cell.id.clone();
    let remote = hearth::cells::remote::RemoteCell::start(hearth::cells::remote::RemoteCellConfig {
        join_url: args.join.clone().context("--join is needed")?,
        token: args.token.clone().context("--token is needed")?,
        cell,
        node,
        state_dir: config.data_dir.join("cell"),
    })
    .await?;
    println!("Cell {id} joined {} and takes work.", args.join.as_deref().unwrap_or_default());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("Draining cell {id}: its instances start elsewhere first.");
    remote.drain(std::time::Duration::from_secs(600)).await?;
    remote.stop().await;
    println!("Cell {id} drained.");
    Ok(())
}
