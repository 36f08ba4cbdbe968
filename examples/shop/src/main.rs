//! `shop`: runs the e-commerce services against an in-process Herald (or
//! `--brokers` for a real cluster), prints a timeline, and replays analytics.
//!
//!     cargo run --release -p shop -- --orders 1000
//!     cargo run --release -p shop -- --brokers localhost:9092 replay

use clap::{Parser, Subcommand};
use shop::{ShopOptions, replay_analytics, run_shop};

#[derive(Parser)]
#[command(about = "The shop example on Herald's event SDK")]
struct Args {
    /// Kafka brokers; without it, an embedded Herald runs in this process.
    #[arg(long)]
    brokers: Option<String>,
    #[arg(long, default_value_t = 1000)]
    orders: u32,
    /// Orders whose timeline is printed in full.
    #[arg(long, default_value_t = 12)]
    show: u32,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Rebuild the analytics view from offset 0 of an existing shop's topics.
    Replay,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let args = Args::parse();
    let embedded = match &args.brokers {
        Some(_) => None,
        None => Some(herald_events::EmbeddedBroker::start()?),
    };
    let brokers = args
        .brokers
        .clone()
        .or_else(|| embedded.as_ref().map(|e| e.bootstrap_servers()))
        .unwrap_or_default();
    if let Some(Cmd::Replay) = args.command {
        let v = replay_analytics(&brokers).await?;
        print_analytics("replayed analytics", &v);
        return Ok(());
    }
    println!(
        "shop: {} orders against {}{}\n",
        args.orders,
        brokers,
        if embedded.is_some() {
            " (embedded Herald)"
        } else {
            ""
        }
    );
    let report = run_shop(ShopOptions {
        brokers: brokers.clone(),
        orders: args.orders,
        show: args.show,
        partitions: args.partitions,
        quiet: false,
    })
    .await?;
    println!("\n== summary ==");
    println!("orders placed      {}", report.orders);
    println!("shipped            {}", report.shipped);
    println!("cancelled          {}", report.cancelled);
    println!("payment retries    {}", report.payment_retries);
    println!(
        "dead-lettered      {} (in shop.orders.dlq)",
        report.dead_lettered
    );
    println!("wall time          {:.2} s", report.wall.as_secs_f64());
    print_analytics("live analytics", &report.analytics);
    let replayed = replay_analytics(&brokers).await?;
    print_analytics("analytics replayed from offset 0", &replayed);
    println!(
        "\nreplay reproduces the live view: {}",
        if replayed == report.analytics {
            "yes"
        } else {
            "NO"
        }
    );
    Ok(())
}

fn print_analytics(title: &str, v: &shop::Analytics) {
    println!("\n{title}:");
    for (t, n) in &v.events_by_type {
        println!("  {t:<16} {n}");
    }
    println!(
        "  revenue          ${}.{:02}",
        v.revenue_cents / 100,
        v.revenue_cents % 100
    );
}
