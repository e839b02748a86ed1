//! A proxied request's body, streamed from the client to the upstream.
//!
//! The client's payload is read on the worker (it cannot leave it) and
//! handed to the upstream connection through a channel of a few chunks, so
//! at most those chunks, actix's read buffer and hyper's write buffer are in
//! memory at once, whatever the body's size. Each side is timed by how long
//! it holds the stream up, not by how long the whole body takes (a large
//! upload over a slow link is fine, a stalled one is not): the client must
//! send the next chunk within `body_timeout`, as nginx's
//! `client_body_timeout`, and the upstream must take one within
//! `upstream_timeout`, as nginx's `proxy_send_timeout`.

use std::time::Duration;

use actix_web::web::{Bytes, Payload};
use futures_util::StreamExt;
use http_body_util::channel::{Channel, Sender};
use http_body_util::{Either, Empty};

/// Chunks in flight between the client's payload and the upstream.
const IN_FLIGHT: usize = 4;

/// What the upstream reads a request body from.
pub type UpstreamBody = Either<Empty<Bytes>, Channel<Bytes, BodyCut>>;

/// A body cut short: the upstream connection is closed instead of the
/// body being ended, so the upstream never takes a part for the whole.
#[derive(Debug, thiserror::Error)]
#[error("the request body was cut short")]
pub struct BodyCut;

/// How the stream of a request body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// All of it was handed on.
    Complete,
    /// The upstream stopped reading it (it has answered, or failed).
    UpstreamDone,
    /// Larger than `upstream_max_body_bytes`.
    TooLarge,
    /// The client sent nothing for `body_timeout`.
    ClientStalled,
    /// The client's stream broke.
    ClientBroken,
    /// The upstream took nothing for `upstream_timeout`.
    UpstreamStalled,
}

/// The limits a body streams under.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub client_idle: Duration,
    pub upstream_idle: Duration,
}

/// An empty body, and a channel body with its sending end.
pub fn channel() -> (Sender<Bytes, BodyCut>, UpstreamBody) {
    let (sender, body) = Channel::new(IN_FLIGHT);
    (sender, Either::Right(body))
}

pub fn empty() -> UpstreamBody {
    Either::Left(Empty::new())
}

/// Streams `payload` into `sender` under `limits`.
pub async fn pump(
    mut payload: Payload,
    mut sender: Sender<Bytes, BodyCut>,
    limits: BodyLimits,
) -> BodyEnd {
    let mut seen = 0u64;
    loop {
        let chunk = match tokio::time::timeout(limits.client_idle, payload.next()).await {
            Err(_) => return cut(sender, BodyEnd::ClientStalled),
            Ok(None) => return BodyEnd::Complete,
            Ok(Some(Err(_))) => return cut(sender, BodyEnd::ClientBroken),
            Ok(Some(Ok(chunk))) => chunk,
        };
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limits.max_bytes {
            sender.abort(BodyCut);
            // The rest is read and dropped (up to a bound) so that the
            // client, still sending, reads the 413 rather than a reset.
            drain(payload, limits.client_idle).await;
            return BodyEnd::TooLarge;
        }
        match tokio::time::timeout(limits.upstream_idle, sender.send_data(chunk)).await {
            Err(_) => return cut(sender, BodyEnd::UpstreamStalled),
            Ok(Err(_)) => return BodyEnd::UpstreamDone,
            Ok(Ok(())) => {}
        }
    }
}

fn cut(sender: Sender<Bytes, BodyCut>, end: BodyEnd) -> BodyEnd {
    sender.abort(BodyCut);
    end
}

/// Reads and drops what is left of `payload`, up to
/// [`crate::http::request::DRAIN_LIMIT`] bytes.
pub async fn drain(mut payload: Payload, idle: Duration) {
    let mut drained = 0usize;
    while drained <= crate::http::request::DRAIN_LIMIT {
        match tokio::time::timeout(idle, payload.next()).await {
            Ok(Some(Ok(chunk))) => drained += chunk.len(),
            _ => return,
        }
    }
}
