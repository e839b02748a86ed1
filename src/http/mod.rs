//! Server assembly: one function builds the whole gateway from a loaded
//! configuration and bound listeners, for `main` and tests alike.

pub mod admin;
pub mod request;
pub mod tenant;
pub mod verify;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, guard, web};
use anyhow::Context;
use ipnet::IpNet;

use crate::config::server::StoreKind;
use crate::config::{Loaded, LoadedTenant};
use crate::engine::{Engine, Tenant, keys};
use crate::store::{self, RedisSettings, Store, StoreSettings};
use request::{LogTags, access_log};
use tenant::{TenantContext, mount};

/// What every handler shares.
pub struct Gateway {
    pub engine: Engine,
    pub max_body_bytes: usize,
    pub trusted_proxies: Vec<IpNet>,
}

/// A running gateway: the public and admin servers and their ports.
pub struct Application {
    port: u16,
    admin_port: u16,
    public: Server,
    admin: Server,
}

/// Stops a running [`Application`] gracefully.
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

impl Application {
    /// Binds the listeners named in the configuration and builds the gateway.
    pub async fn build(loaded: Loaded) -> anyhow::Result<Self> {
        let public = TcpListener::bind(&loaded.server.listen)
            .with_context(|| format!("cannot listen on {}", loaded.server.listen))?;
        let admin = TcpListener::bind(&loaded.server.admin_listen)
            .with_context(|| format!("cannot listen on {}", loaded.server.admin_listen))?;
        Self::build_with_listeners(loaded, public, admin).await
    }

    /// Builds the gateway on listeners bound by the caller (tests bind port 0).
    pub async fn build_with_listeners(
        loaded: Loaded,
        public: TcpListener,
        admin: TcpListener,
    ) -> anyhow::Result<Self> {
        let server = &loaded.server;
        let settings = match server.store.kind {
            StoreKind::Embedded => StoreSettings::Embedded {
                path: server.store.path.clone(),
            },
            StoreKind::Redis => StoreSettings::Redis(RedisSettings {
                url: server.store.redis_url().map_err(anyhow::Error::msg)?,
                key_prefix: server.store.key_prefix.clone(),
                timeout: server.store.timeout.0,
                connect_timeout: server.store.connect_timeout.0,
            }),
        };
        let store = store::open(settings).await?;
        let engine = Engine::new(Arc::clone(&store), server.hashing.max_concurrent);
        let mut contexts = Vec::new();
        for loaded_tenant in loaded.tenants {
            contexts.push(build_tenant(loaded_tenant, store.as_ref()).await?);
        }
        let gateway = web::Data::new(Gateway {
            engine,
            max_body_bytes: server.max_body_bytes,
            trusted_proxies: server.trusted_proxies.clone(),
        });
        let workers = server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));

        let port = public.local_addr()?.port();
        let admin_port = admin.local_addr()?.port();
        let contexts = Arc::new(contexts);
        let public_gateway = gateway.clone();
        let public = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(public_gateway.clone())
                .wrap(from_fn(access_log));
            // Host matches first, then the longest prefix.
            for (context, config) in contexts.iter() {
                let hosts = &config.hosts;
                if let Some(first) = hosts.first() {
                    let mut any = guard::Any(guard::Host(first.clone()));
                    for host in &hosts[1..] {
                        any = any.or(guard::Host(host.clone()));
                    }
                    app = app.service(mount(web::scope("").guard(any), context));
                }
            }
            let mut prefixed: Vec<_> = contexts
                .iter()
                .filter_map(|(c, config)| config.path_prefix.clone().map(|p| (p, c)))
                .collect();
            prefixed.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            for (prefix, context) in prefixed {
                app = app.service(mount(web::scope(&prefix), context));
            }
            app.default_service(web::to(no_tenant))
        })
        .workers(workers)
        .shutdown_timeout(10)
        .disable_signals()
        .listen(public)?
        .run();

        let admin = HttpServer::new(move || {
            App::new()
                .app_data(gateway.clone())
                .wrap(from_fn(access_log))
                .configure(admin::routes)
        })
        .workers(1)
        .shutdown_timeout(5)
        .disable_signals()
        .listen(admin)?
        .run();

        Ok(Self {
            port,
            admin_port,
            public,
            admin,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

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

async fn build_tenant(
    loaded: LoadedTenant,
    store: &dyn Store,
) -> anyhow::Result<(Arc<TenantContext>, crate::config::TenantConfig)> {
    let pairs = if loaded.keys.is_empty() {
        let candidate = keys::generate_ed25519()?;
        let stored = store
            .signing_key_get_or_insert(&loaded.config.id, candidate)
            .await
            .with_context(|| format!("tenant {}: cannot keep its signing key", loaded.config.id))?;
        vec![keys::from_stored(&stored)?]
    } else {
        loaded.keys
    };
    let keyset = keys::KeySet::new(pairs)?;
    let config = loaded.config;
    let lifetimes = loaded.lifetimes;
    let api_key_secret = loaded.api_key_secret;
    let mut tenant = {
        let config = config.clone();
        let claims = loaded.dialect.claims.clone();
        // The dummy hash costs one argon2 run: keep it off the async thread.
        tokio::task::spawn_blocking(move || Tenant::new(&config, keyset, lifetimes, claims))
            .await??
    };
    tenant.api_key_secret = api_key_secret;
    let context = TenantContext {
        tenant,
        openapi: crate::openapi::document(&loaded.dialect, None),
        dialect: loaded.dialect,
    };
    Ok((Arc::new(context), config))
}

/// No tenant is mounted here.
async fn no_tenant(req: HttpRequest) -> HttpResponse {
    use actix_web::HttpMessage;
    req.extensions_mut().insert(LogTags {
        tenant: String::new(),
        route: "no_tenant".into(),
    });
    HttpResponse::NotFound().json(serde_json::json!({ "error": "not_found" }))
}
