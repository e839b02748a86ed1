//! Serving: the public listener (tenants by host, then by longest prefix)
//! and the admin listener, each with one access-log line per request.
//! What is served is assembled elsewhere ([`crate::startup`]).

pub mod access_log;
pub mod admin;
pub mod gateway;
pub mod request;
pub mod routing;
pub mod state;
pub mod tenant;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, guard, web};

pub use state::{AppState, TenantContext};

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
    workers: usize,
    public: TcpListener,
    admin: TcpListener,
) -> std::io::Result<Servers> {
    let state = web::Data::new(state);
    let tenants = Arc::new(tenants);
    let public_state = state.clone();
    let public = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(public_state.clone())
            .wrap(from_fn(access_log::access_log));
        // Host matches first, then the longest prefix.
        for context in tenants.iter() {
            let hosts = &context.hosts;
            if let Some(first) = hosts.first() {
                let mut any = guard::Any(guard::Host(first.clone()));
                for host in &hosts[1..] {
                    any = any.or(guard::Host(host.clone()));
                }
                app = app.service(tenant::mount(web::scope("").guard(any), context));
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
    })
    .workers(workers)
    .shutdown_timeout(10)
    .disable_signals()
    .listen(public)?
    .run();

    let admin = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(access_log::access_log))
            .configure(admin::routes)
    })
    .workers(1)
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
