//! PostgreSQL: the connection pool and the schema migrations.
//!
//! Migrations are the SQL files in `crates/cluster/migrations`, applied in
//! order, each once, inside one transaction that holds an advisory lock, so
//! that brokers starting together neither race nor apply one twice.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Connections per broker. Commits are serial, so most are for fetches and admin.
const POOL_CONNECTIONS_MAX: usize = 16;
/// How long a statement may run before PostgreSQL cancels it.
const STATEMENT_TIMEOUT_MS: u64 = 10_000;
/// Advisory lock key of the migrator ("herald" in ASCII).
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "security",
        include_str!("../migrations/0002_security.sql"),
    ),
];

pub fn parse_config(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .with_context(|| format!("--cluster-db '{url}' is not a PostgreSQL URL"))?;
    config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("herald");
    Ok(config)
}

pub fn pool(config: tokio_postgres::Config) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_CONNECTIONS_MAX)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .context("building the PostgreSQL pool")
}

/// Applies the migrations not applied yet; returns the schema version.
pub async fn migrate(pool: &Pool) -> anyhow::Result<i32> {
    let mut client = pool.get().await.context("connecting to PostgreSQL")?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS herald_migrations (
            version int PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM herald_migrations",
            &[],
        )
        .await?
        .get(0);
    let mut version = applied;
    for (v, name, sql) in MIGRATIONS {
        if *v <= applied {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("applying migration {v} ({name})"))?;
        tx.execute(
            "INSERT INTO herald_migrations (version, name) VALUES ($1, $2)",
            &[v, name],
        )
        .await?;
        tracing::info!(version = v, name, "applied schema migration");
        version = *v;
    }
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    anyhow::ensure!(
        applied <= newest,
        "the database schema is version {applied}, newer than this herald's {newest}: upgrade herald"
    );
    tx.commit().await?;
    Ok(version)
}
