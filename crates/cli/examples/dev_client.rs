//! Temporary scratch binary for manual testing (to be removed).
use clap::Parser;
#[derive(Parser)]
#[command(name = "hearth")]
struct Top {
    #[command(subcommand)]
    cmd: hearth_cli::Command,
}
fn main() -> std::process::ExitCode {
    hearth_cli::run(Top::parse().cmd)
}
