//! The live tail: Server-Sent Events from the newest offsets of the chosen
//! partitions, one `record` event per record (every record of a burst:
//! AKHQ#600 showed only the first). Fetch long-polls in the broker (up to
//! [`TAIL_WAIT_MS`]); comments keep the connection alive. The stream is the
//! only thing running: when the browser goes away axum drops it, and with it
//! the pending Fetch and the tail permit.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::filter::Expr;
use super::messages::{TAILS_MAX, parse_filter, render};
use super::ops::{self, Message};
use super::session::Caller;
use crate::AppState;

/// How long one Fetch waits in the broker for new records.
pub const TAIL_WAIT_MS: i32 = 500;
/// Comment interval while nothing arrives.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new().route("/topics/{name}/tail", get(tail))
}

#[derive(Deserialize)]
pub struct TailQuery {
    partitions: Option<String>,
    filter: Option<String>,
    /// read_committed (default) or read_uncommitted, as in the browser.
    isolation: Option<String>,
}

struct Tail {
    caller: Caller,
    topic: String,
    positions: Vec<(i32, i64)>,
    filter: Option<Expr>,
    isolation: ops::Isolation,
    pending: VecDeque<Message>,
    /// Set after an error event: the stream ends.
    ended: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

async fn tail(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ops::QueryParams(q): ops::QueryParams<TailQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let permit = state
        .api
        .scans
        .tails
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_TAILS",
                format!("{TAILS_MAX} live tails are open; close one"),
            )
        })?;
    let filter = parse_filter(q.filter.as_deref())?;
    let isolation = ops::Isolation::parse(q.isolation.as_deref())?;
    let meta = ops::topic_meta(&caller.client, &name).await?;
    let partitions = ops::choose_partitions(&meta.partitions, q.partitions.as_deref())?;
    // Fetch needs Read: check it now, so a denied tail is a 403 rather than a
    // stream that ends at once.
    let marks = ops::watermarks_with(&caller.client, &name, &partitions, isolation).await?;
    let positions: Vec<(i32, i64)> = partitions.iter().map(|p| (*p, marks[p].1)).collect();
    ops::fetch(&caller.client, &name, &positions, 0, isolation).await?;
    let state = Tail {
        caller,
        topic: name,
        positions,
        filter,
        isolation,
        pending: VecDeque::new(),
        ended: false,
        _permit: permit,
    };
    let events = stream::unfold(state, |mut t| async move {
        loop {
            if let Some(m) = t.pending.pop_front() {
                let ev = Event::default()
                    .event("record")
                    .json_data(&m)
                    .unwrap_or_else(|_| Event::default().comment("unencodable record"));
                return Some((Ok(ev), t));
            }
            if t.ended {
                return None;
            }
            match ops::fetch(
                &t.caller.client,
                &t.topic,
                &t.positions,
                TAIL_WAIT_MS,
                t.isolation,
            )
            .await
            {
                Ok(fetched) => {
                    let mut burst = Vec::new();
                    for f in fetched {
                        if let Some(pos) = t.positions.iter_mut().find(|(p, _)| *p == f.partition) {
                            pos.1 = f.next_offset.max(pos.1);
                        }
                        for r in &f.records {
                            if let Some(m) = render(f.partition, r, t.filter.as_ref()) {
                                burst.push(m);
                            }
                        }
                    }
                    burst.sort_by_key(|m| (m.timestamp, m.partition, m.offset));
                    t.pending.extend(burst);
                }
                Err(e) => {
                    t.ended = true;
                    let body = serde_json::json!({"error": e.error, "message": e.message});
                    let ev = Event::default()
                        .event("error")
                        .json_data(&body)
                        .unwrap_or_else(|_| Event::default().comment("error"));
                    return Some((Ok(ev), t));
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
