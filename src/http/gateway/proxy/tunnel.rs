//! A WebSocket passed through. The upgrade request goes to the upstream like
//! any other, after the same decision; when the upstream answers `101
//! Switching Protocols`, the client gets that answer, and from then on the
//! bytes each side sends are copied to the other, unread, until either
//! closes. actix-http hands over an upgrade request's payload until the
//! connection ends and writes a 101's streaming body raw: all a tunnel needs.

use std::rc::Rc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::headers;
use crate::engine::ErrorCode;
use crate::http::connection::HeadClock;

/// The client's side of the tunnel the upstream's `answer` (a 101) opens.
pub async fn splice(
    req: &HttpRequest,
    payload: Payload,
    mut answer: hyper::Response<Incoming>,
    timeout: Duration,
) -> Result<HttpResponse, ErrorCode> {
    let upgraded = match tokio::time::timeout(timeout, hyper::upgrade::on(&mut answer)).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(error)) => {
            tracing::warn!(%error, "the upstream's WebSocket could not be taken over");
            return Err(ErrorCode::BadGateway);
        }
        Err(_) => return Err(ErrorCode::GatewayTimeout),
    };
    let (from_upstream, to_upstream) = tokio::io::split(TokioIo::new(upgraded));
    actix_web::rt::spawn(copy_to_upstream(payload, to_upstream));
    if let Some(clock) = req.conn_data::<Rc<HeadClock>>() {
        clock.tunnel();
    }
    let mut response = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    super::copy_headers(&mut response, &headers::from_upstream(answer.headers()));
    let protocol = answer
        .headers()
        .get("upgrade")
        .map_or(&b"websocket"[..], |v| v.as_bytes());
    if let Ok(protocol) = actix_web::http::header::HeaderValue::from_bytes(protocol) {
        response.upgrade(protocol);
    }
    Ok(response.streaming(ReaderStream::new(from_upstream)))
}

/// Copies what the client sends into the tunnel; its end closes the
/// upstream's side for writing.
async fn copy_to_upstream(mut payload: Payload, mut upstream: impl AsyncWrite + Unpin) {
    while let Some(Ok(chunk)) = payload.next().await {
        if upstream.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = upstream.shutdown().await;
}
