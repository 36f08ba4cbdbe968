//! LISTEN/NOTIFY on a dedicated connection: `herald_hwm` (a commit advanced
//! high watermarks: wake long-polling fetches) and `herald_topics` (another
//! broker changed topics: reload the catalog) and `herald_security` (users or
//! ACLs changed: reload them). After a reconnect both fire,
//! since notifications sent meanwhile are lost.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

pub async fn listen(
    config: tokio_postgres::Config,
    topics: Arc<Notify>,
    hwm: Arc<Notify>,
    security: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let session = async {
            let (client, mut connection) = config.connect(NoTls).await?;
            let mut messages =
                futures::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed();
            {
                let listen = client.batch_execute(
                    "LISTEN herald_hwm; LISTEN herald_topics; LISTEN herald_security",
                );
                // The connection must be driven while LISTEN runs.
                let mut listen = std::pin::pin!(listen);
                loop {
                    tokio::select! {
                        r = &mut listen => { r?; break; }
                        m = messages.next() => match m {
                            Some(Ok(_)) => {}
                            Some(Err(e)) => return Err(e),
                            None => return Ok(()),
                        },
                    }
                }
            }
            topics.notify_one();
            hwm.notify_one();
            security.notify_one();
            while let Some(m) = messages.next().await {
                if let AsyncMessage::Notification(n) = m? {
                    match n.channel() {
                        "herald_hwm" => hwm.notify_one(),
                        "herald_topics" => topics.notify_one(),
                        "herald_security" => security.notify_one(),
                        _ => {}
                    }
                }
            }
            drop(client);
            Ok::<(), tokio_postgres::Error>(())
        };
        tokio::select! {
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "notification connection lost; reconnecting");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
