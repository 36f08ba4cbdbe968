//! The `herald` binary: `herald serve` runs the broker; the other subcommands
//! are Kafka client tools that work against any Kafka-compatible cluster.

use clap::{Parser, Subcommand};

mod serve;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node broker (data in a local folder).
    Serve(Box<serve::ServeArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
