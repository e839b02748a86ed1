//! Serving: the public listener (tenants by host, then by longest prefix;
//! see [`dispatch`])
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
pub mod dispatch;
pub mod drain;
pub mod gateway;
pub mod host;
pub mod legacy;
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
use drain::InFlight;
use limits::ConnectionLimits;
pub use state::{AppState, TenantContext};

/// How long a closing connection may take to say goodbye.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How the public listener is run.
#[derive(Debug, Clone)]
pub struct Listening {
    pub workers: usize,
    /// Open connections, in all and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Whether the admin listener serves `/metrics`.
    pub metrics: bool,
    /// The admin API's token; `None`: the admin API is off.
    pub admin_token: Option<secrecy::SecretString>,
}

/// How long a graceful stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The public and admin servers, listening, not yet driven.
pub struct Servers {
    public: Server,
    admin: Server,
    in_flight: Arc<InFlight>,
    /// SIGTERM and SIGINT, listened to from the start: one that comes
    /// before the servers are driven still stops them gracefully.
    signals: std::io::Result<Signals>,
}

/// Stops running [`Servers`] gracefully.
#[derive(Clone)]
pub struct Stopper {
    public: ServerHandle,
    admin: ServerHandle,
    in_flight: Arc<InFlight>,
}

impl Stopper {
    /// Stops accepting, lets in-flight requests finish (up to 10 s), then
    /// stops the workers and returns (see [`drain`] for why the wait is
    /// this side's).
    /// Connections still open then (idle keep-alives, WebSocket tunnels)
    /// get what is left of the same 10 s, then are cut.
    pub async fn stop(&self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        self.public.pause().await;
        if !self.in_flight.drained(DRAIN_TIMEOUT).await {
            tracing::warn!(
                in_flight = self.in_flight.count(),
                "requests still in flight after 10 s: cut short"
            );
        }
        for server in [&self.public, &self.admin] {
            if tokio::time::timeout_at(deadline, server.stop(true))
                .await
                .is_err()
            {
                server.stop(false).await;
            }
        }
    }

    /// Stops at once, cutting in-flight requests short.
    pub async fn halt(&self) {
        self.public.stop(false).await;
        self.admin.stop(false).await;
    }
}

/// Serves the tenants `live` mounts (and every set a reload mounts later)
/// on `public`, and the health endpoints and the admin API on `admin`.
pub fn serve(
    state: AppState,
    live: dispatch::Live,
    workers: Arc<dispatch::Workers>,
    listening: Listening,
    public: TcpListener,
    admin: TcpListener,
) -> std::io::Result<Servers> {
    let state = web::Data::new(state);
    let in_flight = Arc::new(InFlight::default());
    let counted = Arc::clone(&in_flight);
    let directory = listening
        .admin_token
        .clone()
        .map(|token| Arc::new(admin::users::Admin::new(token, live.clone())));
    let public_state = state.clone();
    // One app per tenant, all alike but for what they mount: the
    // dispatcher picks one per request (see `dispatch`).
    let app = move |context: Option<&Arc<TenantContext>>| {
        let mut app = App::new()
            .app_data(public_state.clone())
            .wrap(from_fn(host::check_host))
            .wrap(from_fn(access_log::access_log))
            .wrap(from_fn(connection::track_requests))
            .wrap(from_fn({
                let counted = Arc::clone(&counted);
                move |req, next| drain::count_requests(Arc::clone(&counted), req, next)
            }));
        if let Some(context) = context {
            // Its hosts take every path on them, before its prefix.
            if !context.hosts.is_empty() {
                let guard = host::HostGuard::new(&context.hosts);
                app = app.service(tenant::mount(web::scope("").guard(guard), context));
            }
            if let Some(prefix) = context.path_prefix.as_deref() {
                app = app.service(tenant::mount(web::scope(prefix), context));
            }
        }
        app.default_service(web::to(routing::no_tenant))
    };
    let make = Arc::new(move |context: Option<&Arc<TenantContext>>| app(context).into_factory());
    let dispatch = move || dispatch::Dispatch {
        make: Arc::clone(&make),
        live: live.clone(),
        workers: Arc::clone(&workers),
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
                    dispatch().map_err(|error| error.error_response()),
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

    let metrics = listening.metrics;
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(access_log::access_log))
            .configure(|config| admin::routes(config, metrics, directory.clone()))
    })
    .workers(1)
    // Health checks, from a few local probes.
    .max_connections(64)
    .client_request_timeout(HEADER_TIMEOUT)
    .shutdown_timeout(5)
    .disable_signals()
    .listen(admin)?
    .run();
    Ok(Servers {
        public,
        admin,
        in_flight,
        signals: Signals::listen(),
    })
}

impl Servers {
    pub fn stopper(&self) -> Stopper {
        Stopper {
            public: self.public.handle(),
            admin: self.admin.handle(),
            in_flight: Arc::clone(&self.in_flight),
        }
    }

    /// Serves until stopped. SIGTERM or SIGINT stop accepting, let in-flight
    /// requests finish (up to 10 s), then stop the admin listener.
    ///
    /// The servers' own signal handling is off: each would stop the whole
    /// runtime as soon as *it* was done, cutting the other's requests short.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let signals = self.signals;
        let on_signal = tokio::spawn(async move {
            match signals {
                Ok(mut signals) => {
                    let name = signals.next().await;
                    tracing::info!(signal = name, "stopping: draining in-flight requests");
                    // A second signal stops at once.
                    tokio::select! {
                        () = stopper.stop() => {}
                        name = signals.next() => {
                            tracing::warn!(signal = name, "stopping at once");
                            stopper.halt().await;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "no signal handling: stop with SIGKILL"),
            }
        });
        let (public, admin) = futures_util::future::join(self.public, self.admin).await;
        on_signal.abort();
        public.and(admin)
    }
}

/// SIGTERM and SIGINT, caught from the moment they are listened to.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next one; returns which.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
