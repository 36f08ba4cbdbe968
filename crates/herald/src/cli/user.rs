//! `herald user create|delete|list`: SCRAM users. Online through
//! AlterUserScramCredentials / DescribeUserScramCredentials (the password is
//! salted here; only the salted password travels), or offline before the
//! broker first starts, like `kafka-storage format --add-scram`: into the data
//! directory (`--data-dir`) or the cluster database (`--cluster-db`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use herald_security::scram::{self, ScramCredential, ScramMechanism};
use herald_security::store::{Change, FileStore, SecurityStore};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::raw::RawClient;
use super::{Common, Table, print_json};

/// Longest password read from stdin.
const PASSWORD_BYTES_MAX: u64 = 1024;

#[derive(Args, Debug, Clone)]
pub struct Offline {
    /// Write into this data directory instead of calling a broker (created if
    /// missing; the broker must not be running).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write into this cluster database instead of calling a broker.
    #[arg(long)]
    pub cluster_db: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or set its password for a mechanism.
    Create {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// Read the password from stdin (one trailing newline is dropped).
        #[arg(long)]
        password_stdin: bool,
        /// Read the password from a file.
        #[arg(long, conflicts_with = "password_stdin")]
        password_file: Option<PathBuf>,
        #[arg(long, default_value_t = 4096)]
        iterations: u32,
        #[command(flatten)]
        offline: Offline,
    },
    /// Delete a user's credential (all mechanisms unless --mechanism).
    Delete {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
        #[command(flatten)]
        offline: Offline,
    },
    /// Users and their mechanisms (never secrets).
    List {
        #[command(flatten)]
        offline: Offline,
    },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(&name.to_ascii_uppercase())
        .with_context(|| format!("unknown mechanism {name:?} (SCRAM-SHA-256, SCRAM-SHA-512)"))
}

fn password(stdin: bool, file: &Option<PathBuf>) -> anyhow::Result<String> {
    if let Some(f) = file {
        return super::read_password_file(f);
    }
    if !stdin {
        bail!("give the password with --password-stdin or --password-file");
    }
    let mut text = String::new();
    std::io::stdin()
        .take(PASSWORD_BYTES_MAX + 2)
        .read_to_string(&mut text)
        .context("reading the password from stdin")?;
    let text = super::strip_newline(text);
    if text.len() as u64 > PASSWORD_BYTES_MAX {
        bail!("the password is longer than {PASSWORD_BYTES_MAX} bytes");
    }
    if text.is_empty() {
        bail!("the password is empty");
    }
    Ok(text)
}

/// Where offline changes go, if anywhere.
async fn offline_store(o: &Offline) -> anyhow::Result<Option<Box<dyn SecurityStore>>> {
    match (&o.data_dir, &o.cluster_db) {
        (Some(_), Some(_)) => bail!("give --data-dir or --cluster-db, not both"),
        (Some(dir), None) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(Some(Box::new(FileStore::new(dir))))
        }
        (None, Some(url)) => Ok(Some(Box::new(
            herald_cluster::offline_security_store(url).await?,
        ))),
        (None, None) => Ok(None),
    }
}

pub async fn run(common: &Common, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            mechanism: m,
            password_stdin,
            password_file,
            iterations,
            offline,
        } => {
            let m = mechanism(&m)?;
            if !(scram::ITERATIONS_MIN..=scram::ITERATIONS_MAX).contains(&iterations) {
                bail!(
                    "--iterations must be in {}..={}",
                    scram::ITERATIONS_MIN,
                    scram::ITERATIONS_MAX
                );
            }
            if name.is_empty() {
                bail!("the user name is empty");
            }
            let pw = password(password_stdin, &password_file)?;
            let credential = ScramCredential::generate(m, pw.as_bytes(), iterations);
            if let Some(store) = offline_store(&offline).await? {
                store
                    .apply(vec![Change::UpsertCredential {
                        user: name.clone(),
                        credential,
                    }])
                    .await?;
            } else {
                let mut u = ScramCredentialUpsertion::default();
                u.name = StrBytes::from_string(name.clone());
                u.mechanism = m.kafka_type();
                u.iterations = iterations as i32;
                u.salt = credential.salt.clone().into();
                u.salted_password =
                    scram::salted_password(m, pw.as_bytes(), &credential.salt, iterations).into();
                let mut req = AlterUserScramCredentialsRequest::default();
                req.upsertions = vec![u];
                alter(common, &req)?;
            }
            report(common, "created", &name, Some(m.name()));
        }
        UserCommand::Delete {
            name,
            mechanism: m,
            offline,
        } => {
            let mechs: Vec<ScramMechanism> = match &m {
                Some(m) => vec![mechanism(m)?],
                None => vec![ScramMechanism::Sha256, ScramMechanism::Sha512],
            };
            if let Some(store) = offline_store(&offline).await? {
                let state = store.load().await?;
                let changes: Vec<Change> = mechs
                    .iter()
                    .filter(|mm| state.credential(&name, **mm).is_some())
                    .map(|mm| Change::DeleteCredential {
                        user: name.clone(),
                        mechanism: *mm,
                    })
                    .collect();
                if changes.is_empty() {
                    bail!("user {name} has no such credential");
                }
                store.apply(changes).await?;
            } else {
                // Without --mechanism: delete the mechanisms the user has.
                let mechs = if m.is_some() {
                    mechs
                } else {
                    describe(common, Some(&name))?
                        .into_iter()
                        .flat_map(|(_, ms)| ms)
                        .filter_map(|(t, _)| ScramMechanism::from_kafka_type(t))
                        .collect()
                };
                if mechs.is_empty() {
                    bail!("user {name} has no credentials");
                }
                let mut req = AlterUserScramCredentialsRequest::default();
                req.deletions = mechs
                    .iter()
                    .map(|mm| {
                        let mut d = ScramCredentialDeletion::default();
                        d.name = StrBytes::from_string(name.clone());
                        d.mechanism = mm.kafka_type();
                        d
                    })
                    .collect();
                alter(common, &req)?;
            }
            report(common, "deleted", &name, m.as_deref());
        }
        UserCommand::List { offline } => {
            let users: Vec<(String, Vec<(String, u32)>)> = match offline_store(&offline).await? {
                Some(store) => store
                    .load()
                    .await?
                    .users
                    .into_iter()
                    .map(|(u, cs)| {
                        (
                            u,
                            cs.iter()
                                .map(|c| (c.mechanism.name().to_string(), c.iterations))
                                .collect(),
                        )
                    })
                    .collect(),
                None => describe(common, None)?
                    .into_iter()
                    .map(|(u, ms)| {
                        (
                            u,
                            ms.into_iter()
                                .map(|(t, i)| {
                                    let name = ScramMechanism::from_kafka_type(t)
                                        .map(|m| m.name().to_string())
                                        .unwrap_or_else(|| format!("type {t}"));
                                    (name, i as u32)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            };
            if common.json() {
                print_json(&json!(users
                    .iter()
                    .map(|(u, ms)| json!({
                        "user": u,
                        "credentials": ms.iter().map(|(m, i)| json!({"mechanism": m, "iterations": i})).collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>()));
            } else {
                let mut t = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
                for (u, ms) in &users {
                    for (m, i) in ms {
                        t.row(vec![u.clone(), m.clone(), i.to_string()]);
                    }
                }
                print!("{}", t.render());
            }
        }
    }
    Ok(())
}

fn report(common: &Common, what: &str, name: &str, mechanism: Option<&str>) {
    if common.json() {
        print_json(&json!({"user": name, "mechanism": mechanism, "result": what}));
    } else {
        match mechanism {
            Some(m) => println!("{what} user {name} ({m})"),
            None => println!("{what} user {name}"),
        }
    }
}

fn alter(common: &Common, req: &AlterUserScramCredentialsRequest) -> anyhow::Result<()> {
    let mut raw = RawClient::connect(common)?;
    let resp: AlterUserScramCredentialsResponse =
        raw.call(ApiKey::AlterUserScramCredentials, 0, req)?;
    for r in resp.results {
        if r.error_code != 0 {
            bail!(
                "user {}: {} (error {})",
                r.user.as_str(),
                r.error_message.as_ref().map(|m| m.as_str()).unwrap_or(""),
                r.error_code
            );
        }
    }
    Ok(())
}

/// (user, [(mechanism type, iterations)]).
type Described = Vec<(String, Vec<(i8, i32)>)>;

fn describe(common: &Common, user: Option<&str>) -> anyhow::Result<Described> {
    let mut raw = RawClient::connect(common)?;
    let mut req = DescribeUserScramCredentialsRequest::default();
    req.users = user.map(|u| {
        let mut n = UserName::default();
        n.name = StrBytes::from_string(u.to_string());
        vec![n]
    });
    let resp: DescribeUserScramCredentialsResponse =
        raw.call(ApiKey::DescribeUserScramCredentials, 0, &req)?;
    if resp.error_code != 0 {
        bail!(
            "{} (error {})",
            resp.error_message
                .as_ref()
                .map(|m| m.as_str())
                .unwrap_or(""),
            resp.error_code
        );
    }
    let mut out = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            bail!(
                "user {}: {} (error {})",
                r.user.as_str(),
                r.error_message.as_ref().map(|m| m.as_str()).unwrap_or(""),
                r.error_code
            );
        }
        out.push((
            r.user.to_string(),
            r.credential_infos
                .iter()
                .map(|c| (c.mechanism, c.iterations))
                .collect(),
        ));
    }
    Ok(out)
}
