//! Serving: the public listener (tenants by host, then by longest prefix)
//! and the admin listener, each with one access-log line per request.
//! What is served is assembled elsewhere ([`crate::startup`]).
//!
//! The public listener is put together from actix-web's own parts, as
//! `HttpServer` does it, so that each accepted stream can pass the
//! connection limits ([`limits`]) and carry a head deadline ([`connection`])
//! before HTTP is spoken on it.

pub mod access_log;
pub mod admin;
pub mod connection;
pub mod cors;
pub mod gateway;
pub mod host;
pub mod limits;
pub mod request;
pub mod routing;
pub mod state;
pub mod tenant;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::{AppConfig, Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpServer, web};

use connection::{Connection, HEADER_TIMEOUT, KEEP_ALIVE};
use limits::ConnectionLimits;
pub use state::{AppState, TenantContext};

/// How long a closing connection may take to say goodbye.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How the public listener is run.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub workers: usize,
    /// Open connections, in all and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

/// The public and admin servers, listening, not yet driven.
pub struct Servers {
    public: Server,
    admin: Server,
}

/// Stops running [`Servers`] gracefully.
#[derive(Clone)]
pub struct Stopper {
    public: ServerHandle,
    admin: ServerHandle,
}

impl Stopper {
    /// Stops accepting, lets in-flight requests finish, then returns.
    pub async fn stop(&self) {
        self.public.stop(true).await;
        self.admin.stop(true).await;
    }

    /// Stops at once, cutting in-flight requests short.
    pub async fn halt(&self) {
        self.public.stop(false).await;
        self.admin.stop(false).await;
    }
}

/// Serves `tenants` on `public` and the health endpoints on `admin`.
pub fn serve(
    state: AppState,
    tenants: Vec<Arc<TenantContext>>,
    listening: Listening,
    public: TcpListener,
    admin: TcpListener,
) -> std::io::Result<Servers> {
    let state = web::Data::new(state);
    let tenants = Arc::new(tenants);
    let public_state = state.clone();
    let app = move || {
        let mut app = App::new()
            .app_data(public_state.clone())
            .wrap(from_fn(host::check_host))
            .wrap(from_fn(access_log::access_log))
            .wrap(from_fn(connection::track_requests));
        // Host matches first, then the longest prefix.
        for context in tenants.iter() {
            if !context.hosts.is_empty() {
                let guard = host::HostGuard::new(&context.hosts);
                app = app.service(tenant::mount(web::scope("").guard(guard), context));
            }
        }
        let mut prefixed: Vec<_> = tenants
            .iter()
            .filter_map(|c| c.path_prefix.as_deref().map(|p| (p, c)))
            .collect();
        prefixed.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        for (prefix, context) in prefixed {
            app = app.service(tenant::mount(web::scope(prefix), context));
        }
        app.default_service(web::to(routing::no_tenant))
    };
    let limits = ConnectionLimits::new(listening.max_connections, listening.max_connections_per_ip);
    let public = Server::build()
        .workers(listening.workers)
        // Per worker, so never tighter than the exact count `limits` keeps.
        .max_concurrent_connections(listening.max_connections)
        .shutdown_timeout(10)
        .disable_signals()
        .listen("polyauth-public", public, move || {
            let limits = Arc::clone(&limits);
            let http = HttpService::<Connection, _, _>::build()
                .keep_alive(KEEP_ALIVE)
                .client_request_timeout(HEADER_TIMEOUT)
                .client_disconnect_timeout(DISCONNECT_TIMEOUT)
                .on_connect_ext(|io: &Connection, data| io.describe(data))
                // The app never reads the config's host or address (the
                // OpenAPI server URL falls back to the connection's `LocalAddr`).
                .finish(map_config(
                    app().into_factory().map_err(|error| error.error_response()),
                    |()| AppConfig::default(),
                ))
                .map_err(|_| ());
            // A connection beyond a limit is dropped, so closed, unread.
            fn_service(move |io: TcpStream| {
                let admitted = Connection::admit(io, &limits).map(|connection| {
                    let peer = connection.peer_addr();
                    (connection, Protocol::Http1, peer)
                });
                std::future::ready(admitted.ok_or(()))
            })
            .and_then(http)
        })?
        .run();

    let admin = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(access_log::access_log))
            .configure(admin::routes)
    })
    .workers(1)
    // Health checks, from a few local probes.
    .max_connections(64)
    .client_request_timeout(HEADER_TIMEOUT)
    .shutdown_timeout(5)
    .disable_signals()
    .listen(admin)?
    .run();
    Ok(Servers { public, admin })
}

impl Servers {
    pub fn stopper(&self) -> Stopper {
        Stopper {
            public: self.public.handle(),
            admin: self.admin.handle(),
        }
    }

    /// Serves until stopped. SIGTERM or SIGINT stop accepting, let in-flight
    /// requests finish (up to 10 s), then stop the admin listener.
    ///
    /// The servers' own signal handling is off: each would stop the whole
    /// runtime as soon as *it* was done, cutting the other's requests short.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let on_signal = tokio::spawn(async move {
            match shutdown_signal().await {
                Ok(name) => {
                    tracing::info!(signal = name, "stopping: draining in-flight requests");
                    stopper.stop().await;
                }
                Err(error) => tracing::warn!(%error, "no signal handling: stop with SIGKILL"),
            }
        });
        let (public, admin) = futures_util::future::join(self.public, self.admin).await;
        on_signal.abort();
        public.and(admin)
    }
}

/// Waits for SIGTERM or SIGINT; returns which.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
