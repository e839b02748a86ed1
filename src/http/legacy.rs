//! Lazy migration's side of HTTP: a login for an email no directory knows
//! is sent, as it came (method, content type, body), to the vendor's login
//! URL; only an answer with the route's success shape (status and body)
//! is a yes. The vendor's answer goes no further: its tokens never reach
//! the client, and neither the password nor the answer reaches a log.

use std::sync::Arc;

use actix_web::web::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::migration::Migration;
use crate::dialect::Dialect;
use crate::engine::Legacy;

/// The longest vendor answer read; a longer one is no success.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One login to ask the vendor about.
pub struct Replay {
    pub migration: Arc<Migration>,
    pub dialect: Arc<Dialect>,
    /// The login route's index in the dialect.
    pub route: usize,
    pub content_type: Option<http::HeaderValue>,
    pub body: Bytes,
}

#[async_trait::async_trait]
impl Legacy for Replay {
    async fn accepts(&self) -> bool {
        let vendor = self.migration.url.authority().map(|a| a.host().to_owned());
        match tokio::time::timeout(self.migration.timeout, self.ask()).await {
            Ok(Ok(true)) => true,
            Ok(Ok(false)) => {
                tracing::info!(vendor = ?vendor, "the legacy vendor refused the login");
                false
            }
            Ok(Err(error)) => {
                tracing::warn!(vendor = ?vendor, %error, "the legacy vendor could not be asked");
                false
            }
            Err(_) => {
                tracing::warn!(vendor = ?vendor, timeout = ?self.migration.timeout, "the legacy vendor did not answer in time");
                false
            }
        }
    }
}

impl Replay {
    /// Sends the login; `Ok(true)` when the answer has the success shape.
    async fn ask(&self) -> Result<bool, String> {
        let route = &self.dialect.routes[self.route];
        let method =
            http::Method::from_bytes(route.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(self.migration.url.clone())
            .header(http::header::ACCEPT, "application/json");
        if let Some(content_type) = &self.content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.migration.timeout));
        let builder = Client::builder(TokioExecutor::new());
        let answer = match &self.migration.tls {
            Some(tls) => {
                connector.enforce_http(false);
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(rustls::ClientConfig::clone(tls))
                    .https_only()
                    .enable_http1()
                    .wrap_connector(connector);
                builder.build(connector).request(request).await
            }
            None => builder.build(connector).request(request).await,
        }
        .map_err(|e| format!("{e:#}"))?;
        let status = answer.status().as_u16();
        let body = match Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            // Too long, or cut off: no success either way.
            Err(_) => return Ok(false),
        };
        Ok(route.is_success(status, &body))
    }
}
