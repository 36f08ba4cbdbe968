//! The `herald` binary: `herald serve` runs the broker; the other subcommands
//! are Kafka client tools that work against any Kafka-compatible cluster.

use clap::{Parser, Subcommand};

mod cli;
mod serve;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(flatten)]
    common: cli::Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node broker (data in a local folder).
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe, delete and alter topics.
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Produce records from arguments or stdin.
    Produce(cli::produce::ProduceArgs),
    /// Consume records.
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// Cluster information.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Benchmarks: produce, consume, end-to-end, and the null broker.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// SCRAM users: create, delete, list (online, or offline before the first start).
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// ACLs: create, list, delete.
    #[command(subcommand)]
    Acl(cli::acl::AclCommand),
    /// Transactions: list, describe, describe-producers (as kafka-transactions.sh).
    #[command(subcommand)]
    Txn(cli::txn::TxnCommand),
    /// Event SDK tools.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Move the records of `<topic>.dlq` back to their original topic.
    ReplayDlq { topic: String },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Brokers, controller, cluster id and API versions.
    Info,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        other => client_command(&cli.common, other),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn client_command(common: &cli::Common, command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            Command::Serve(_) => anyhow::bail!("serve is not a client command"),
            Command::Topic(c) => cli::topic::run(common, c).await,
            Command::Produce(a) => cli::produce::run(common, a).await,
            Command::Consume(a) => tokio::task::block_in_place(|| cli::consume::run(common, a)),
            Command::Group(c) => {
                tokio::task::block_in_place(|| futures_block(cli::group::run(common, c)))
            }
            Command::Cluster(ClusterCommand::Info) => cli::cluster::info(common),
            Command::Bench(c) => cli::bench::run(common, c).await,
            Command::User(c) => cli::user::run(common, c).await,
            Command::Acl(c) => tokio::task::block_in_place(|| cli::acl::run(common, c)),
            Command::Txn(c) => tokio::task::block_in_place(|| cli::txn::run(common, c)),
            Command::Events(EventsCommand::ReplayDlq { topic }) => {
                cli::metadata(&common.query_consumer(None)?, None, &common.brokers)?;
                let n = herald_events::dead_letter::replay_dead_letters_with(
                    &common.brokers,
                    &topic,
                    &common.security_properties()?,
                )
                .await?;
                if common.json() {
                    cli::print_json(&serde_json::json!({"topic": topic, "replayed": n}));
                } else {
                    println!("replayed {n} records from {topic}.dlq");
                }
                Ok(())
            }
        }
    })
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}
