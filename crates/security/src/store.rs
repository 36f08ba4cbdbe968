//! Where users' SCRAM credentials and ACLs live: a file in the data
//! directory on a single node, the cluster database in cluster mode. The
//! broker keeps a snapshot in memory and writes through the store.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::acl::AclBinding;
use crate::scram::{ScramCredential, ScramMechanism};

pub type StoreFuture<T> = Pin<Box<dyn Future<Output = std::io::Result<T>> + Send>>;

/// Largest number of users and of ACLs a store holds: a bound on memory and
/// on the work of one authorization (a linear scan over matching bindings).
pub const USERS_MAX: usize = 100_000;
pub const ACLS_MAX: usize = 100_000;

/// Users and ACLs, as loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityState {
    /// User name → its credentials, at most one per mechanism.
    pub users: BTreeMap<String, Vec<ScramCredential>>,
    pub acls: Vec<AclBinding>,
}

impl SecurityState {
    pub fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users
            .get(user)?
            .iter()
            .find(|c| c.mechanism == mechanism)
    }

    /// Sets (or replaces) `user`'s credential for its mechanism.
    pub fn upsert_credential(&mut self, user: &str, credential: ScramCredential) {
        let creds = self.users.entry(user.to_string()).or_default();
        creds.retain(|c| c.mechanism != credential.mechanism);
        creds.push(credential);
        creds.sort_by_key(|c| c.mechanism);
    }

    /// Removes `user`'s credential for `mechanism`; false if it had none.
    pub fn delete_credential(&mut self, user: &str, mechanism: ScramMechanism) -> bool {
        let Some(creds) = self.users.get_mut(user) else {
            return false;
        };
        let before = creds.len();
        creds.retain(|c| c.mechanism != mechanism);
        let deleted = creds.len() != before;
        if creds.is_empty() {
            self.users.remove(user);
        }
        deleted
    }

    /// Adds bindings not already present (CreateAcls of an existing ACL succeeds).
    pub fn add_acls(&mut self, acls: &[AclBinding]) {
        let mut present: std::collections::HashSet<AclBinding> =
            self.acls.iter().cloned().collect();
        for a in acls {
            if present.insert(a.clone()) {
                self.acls.push(a.clone());
            }
        }
    }

    pub fn remove_acls(&mut self, acls: &[AclBinding]) {
        let doomed: std::collections::HashSet<&AclBinding> = acls.iter().collect();
        self.acls.retain(|a| !doomed.contains(a));
    }
}

/// A change to users or ACLs, applied by a store atomically.
#[derive(Clone, Debug)]
pub enum Change {
    UpsertCredential {
        user: String,
        credential: ScramCredential,
    },
    DeleteCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    CreateAcls(Vec<AclBinding>),
    DeleteAcls(Vec<AclBinding>),
}

impl Change {
    pub fn apply(&self, state: &mut SecurityState) {
        match self {
            Change::UpsertCredential { user, credential } => {
                state.upsert_credential(user, credential.clone())
            }
            Change::DeleteCredential { user, mechanism } => {
                state.delete_credential(user, *mechanism);
            }
            Change::CreateAcls(acls) => state.add_acls(acls),
            Change::DeleteAcls(acls) => state.remove_acls(acls),
        }
    }
}

pub trait SecurityStore: Send + Sync {
    /// The current users and ACLs.
    fn load(&self) -> StoreFuture<SecurityState>;
    /// Applies `changes` durably, all or none.
    fn apply(&self, changes: Vec<Change>) -> StoreFuture<()>;
    /// Resolves when another broker may have changed something (never, on a
    /// single node).
    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// `security.json` in the data directory, rewritten atomically (temp file,
/// fsync, rename, fsync of the directory) on every change.
pub struct FileStore {
    path: PathBuf,
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

pub const FILE_NAME: &str = "security.json";
/// The file is small (credentials are ~200 bytes, ACLs ~150); refuse to read a
/// corrupt or hostile one of absurd size.
const FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

impl FileStore {
    pub fn new(data_dir: &Path) -> FileStore {
        FileStore {
            path: data_dir.join(FILE_NAME),
            lock: Default::default(),
        }
    }

    /// Reads the file; a missing file is an empty state.
    pub fn read(&self) -> std::io::Result<SecurityState> {
        read_file(&self.path)
    }

    /// Applies changes synchronously (the offline `herald user create`).
    pub fn apply_now(&self, changes: &[Change]) -> std::io::Result<()> {
        let mut state = read_file(&self.path)?;
        for c in changes {
            c.apply(&mut state);
        }
        check_bounds(&state)?;
        write_file(&self.path, &state)
    }
}

fn check_bounds(state: &SecurityState) -> std::io::Result<()> {
    if state.users.len() > USERS_MAX || state.acls.len() > ACLS_MAX {
        return Err(std::io::Error::other(format!(
            "at most {USERS_MAX} users and {ACLS_MAX} ACLs"
        )));
    }
    Ok(())
}

fn read_file(path: &Path) -> std::io::Result<SecurityState> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SecurityState::default()),
        Err(e) => return Err(e),
    };
    if meta.len() > FILE_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, over {FILE_BYTES_MAX}",
                path.display(),
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

fn write_file(path: &Path, state: &SecurityState) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        // Salts and keys: readable by the broker's user only (RFC 5802 §9:
        // StoredKey plus one eavesdropped exchange impersonates the user).
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl SecurityStore for FileStore {
    fn load(&self) -> StoreFuture<SecurityState> {
        let path = self.path.clone();
        Box::pin(async move { tokio::task::spawn_blocking(move || read_file(&path)).await? })
    }

    fn apply(&self, changes: Vec<Change>) -> StoreFuture<()> {
        let path = self.path.clone();
        // Serialise writers: each read-modify-write sees the previous one.
        let lock = self.lock.clone();
        Box::pin(async move {
            let _guard = lock.lock().await;
            tokio::task::spawn_blocking(move || {
                let mut state = read_file(&path)?;
                for c in &changes {
                    c.apply(&mut state);
                }
                check_bounds(&state)?;
                write_file(&path, &state)
            })
            .await?
        })
    }

    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::pending())
    }
}
