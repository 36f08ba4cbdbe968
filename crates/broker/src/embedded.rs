//! An in-process Herald for application tests, like Spring's `@EmbeddedKafka`:
//! a real broker on an ephemeral port with a temporary data directory, on its
//! own thread and runtime, so it works from sync and async tests alike.
//! Dropping it shuts the broker down and deletes the data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::config::BrokerConfig;

pub struct EmbeddedBroker {
    addr: SocketAddr,
    data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The temporary data directory, when this broker made one.
    _tmp: Option<tempfile::TempDir>,
}

impl EmbeddedBroker {
    /// Starts a broker with defaults suited to tests (auto-created topics, one partition).
    pub fn start() -> anyhow::Result<EmbeddedBroker> {
        Self::start_with(|_| {})
    }

    /// Starts a broker after `configure` adjusted its config (data dir and
    /// listen address are chosen here).
    pub fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> anyhow::Result<EmbeddedBroker> {
        let tmp = tempfile::Builder::new()
            .prefix("herald-embedded-")
            .tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut b = Self::start_in(&dir, configure)?;
        b._tmp = Some(tmp);
        Ok(b)
    }

    /// Starts a broker on an existing data directory, which it leaves in
    /// place when dropped (restart tests, a data directory on a small
    /// filesystem).
    pub fn start_in(
        data_dir: &std::path::Path,
        configure: impl FnOnce(&mut BrokerConfig),
    ) -> anyhow::Result<EmbeddedBroker> {
        let mut config = BrokerConfig::default();
        if let Some(id) = crate::broker::stored_node_id(data_dir) {
            config.node_id = id;
        }
        configure(&mut config);
        config.data_dir = data_dir.to_path_buf();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let data_dir = config.data_dir.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("herald-embedded".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = addr_tx.send(Err(anyhow::anyhow!(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match crate::server::start(config).await {
                        Ok(broker) => {
                            let _ = addr_tx.send(Ok(broker.addr));
                            let _ = stop_rx.await;
                            broker.shutdown().await;
                        }
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let addr = addr_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("embedded broker thread died"))??;
        Ok(EmbeddedBroker {
            addr,
            data_dir,
            stop: Some(stop_tx),
            thread: Some(thread),
            _tmp: None,
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
