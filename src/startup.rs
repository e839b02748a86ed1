//! Assembly: from a loaded configuration to a running gateway. Opens the
//! store, builds every tenant (keys, dummy hash, document) and hands them
//! to [`crate::http`] to serve.

use std::net::TcpListener;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::{Loaded, LoadedTenant};
use crate::engine::{Engine, keys};
use crate::http::cors::CorsPolicy;
use crate::http::{self, AppState, Servers, Stopper, TenantContext};
use crate::store::{self, Store};

/// A running gateway: the public and admin servers and their ports.
pub struct Application {
    port: u16,
    admin_port: u16,
    servers: Servers,
    store: Arc<dyn Store>,
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
        // Before any tenant: each registers its handles with the recorder.
        // Without one, the handles record nothing.
        if server.metrics {
            crate::meters::install();
        }
        let store = store::open(server.store.settings().map_err(anyhow::Error::msg)?).await?;
        let engine = Engine::new(Arc::clone(&store), server.hashing.max_concurrent)
            .context("cannot start the argon2 threads")?;
        // Listening before any key is read: no rotation goes unheard.
        let rotations = store.signing_keys_changes();
        let mut tenants = Vec::new();
        let mut generated = Vec::new();
        let mut documents = Documents::new();
        for loaded_tenant in loaded.tenants {
            let grace = loaded_tenant
                .keys
                .is_empty()
                .then(|| keys::rotation_grace(&loaded_tenant.lifetimes));
            let context = build_tenant(loaded_tenant, store.as_ref(), &mut documents).await?;
            if let Some(grace) = grace {
                generated.push(Generated {
                    context: Arc::downgrade(&context),
                    grace,
                });
            }
            tenants.push(context);
        }
        if !generated.is_empty() {
            tokio::spawn(follow_rotations(
                Arc::downgrade(&store),
                rotations,
                generated,
            ));
        }
        let state = AppState {
            engine,
            max_body_bytes: server.max_body_bytes,
            body_timeout: server.body_timeout.0,
            trusted_proxies: server.trusted_proxies.clone(),
        };
        let workers = server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let port = public.local_addr()?.port();
        let admin_port = admin.local_addr()?.port();
        let listening = http::Listening {
            workers,
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            metrics: server.metrics,
            admin_token: server.admin_token().map_err(anyhow::Error::msg)?,
        };
        let servers = http::serve(state, tenants, listening, public, admin)?;
        Ok(Self {
            port,
            admin_port,
            servers,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn stopper(&self) -> Stopper {
        self.servers.stopper()
    }

    /// Serves until stopped: SIGTERM or SIGINT drain in-flight requests,
    /// then whatever the store holds unsynced is made durable.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.servers.run_until_stopped().await;
        if let Err(error) = self.store.flush().await {
            tracing::error!(error = %error, "the store could not sync its last writes");
        }
        served
    }
}

/// A failed reload of generated keys is tried again after this, then
/// after twice as long each time, up to [`RELOAD_RETRY_MAX`].
const RELOAD_RETRY: Duration = Duration::from_millis(250);
const RELOAD_RETRY_MAX: Duration = Duration::from_secs(5);

/// A tenant whose signing keys are generated, as [`follow_rotations`] sees it.
struct Generated {
    context: Weak<TenantContext>,
    /// See [`keys::rotation_grace`].
    grace: u64,
}

/// Keeps the key sets of tenants with generated keys in step with the
/// store: after each rotation (by `polyauth keys rotate` on a shared
/// store, or by this process), each such tenant reads its keys again and
/// its set is swapped whole, so verification never waits on a lock. Holds
/// the store and tenants weakly: it ends when the gateway stops.
async fn follow_rotations(
    store: Weak<dyn Store>,
    mut rotations: watch::Receiver<u64>,
    tenants: Vec<Generated>,
) {
    while rotations.changed().await.is_ok() {
        let mut retry = RELOAD_RETRY;
        loop {
            let Some(store) = store.upgrade() else {
                return;
            };
            match reload_generated(store.as_ref(), &tenants).await {
                Ok(()) => break,
                Err(error) => tracing::warn!(
                    error = %format!("{error:#}"),
                    retry_in = ?retry,
                    "cannot read rotated signing keys; the previous ones stay in use"
                ),
            }
            drop(store);
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RELOAD_RETRY_MAX);
        }
    }
}

async fn reload_generated(store: &dyn Store, tenants: &[Generated]) -> anyhow::Result<()> {
    for generated in tenants {
        let Some(context) = generated.context.upgrade() else {
            continue;
        };
        let tenant = &context.tenant;
        let stored = store
            .signing_keys_get_or_init(&tenant.id, keys::generate_ed25519()?)
            .await?;
        let set = keys::KeySet::generated(&stored, generated.grace)
            .with_context(|| format!("tenant {}: its generated keys", tenant.id))?;
        let now = crate::store::unix_now();
        let signer = |set: &keys::KeySet| set.signing(now).map(|key| key.kid.clone());
        let (before, after) = (signer(&tenant.keys.load()), signer(&set));
        tenant.keys.store(Arc::new(set));
        if before != after {
            tracing::info!(
                tenant = %tenant.id,
                kid = after.as_deref().unwrap_or_default(),
                "signing with a rotated key"
            );
        }
    }
    Ok(())
}

/// Each dialect's OpenAPI document, made once for all its tenants.
type Documents = std::collections::HashMap<String, Arc<utoipa::openapi::OpenApi>>;

async fn build_tenant(
    loaded: LoadedTenant,
    store: &dyn Store,
    documents: &mut Documents,
) -> anyhow::Result<Arc<TenantContext>> {
    let keyset = if loaded.keys.is_empty() {
        let candidate = keys::generate_ed25519()?;
        let stored = store
            .signing_keys_get_or_init(&loaded.config.id, candidate)
            .await
            .with_context(|| format!("tenant {}: cannot keep its signing key", loaded.config.id))?;
        let grace = keys::rotation_grace(&loaded.lifetimes);
        keys::KeySet::generated(&stored, grace)
            .with_context(|| format!("tenant {}: its generated keys", loaded.config.id))?
    } else {
        keys::KeySet::new(loaded.keys)?
    };
    let config = loaded.config;
    let limits = (loaded.lifetimes, loaded.max_sessions);
    let api_key_secret = loaded.api_key_secret;
    let tenant = {
        let config = config.clone();
        let claims = loaded.dialect.claims.clone();
        // The dummy hash costs one argon2 run: keep it off the async thread.
        tokio::task::spawn_blocking(move || config.tenant(keyset, limits, claims, api_key_secret))
            .await??
    };
    // A file user and a directory user with one email would be two
    // accounts behind one login; with one id, one subject for two accounts.
    for user in tenant.file_users() {
        if store.user_find(&tenant.id, &user.email).await?.is_some() {
            anyhow::bail!(
                "tenant {}: `{}` is both a user of its file and of its directory in the store; remove one",
                tenant.id,
                user.email
            );
        }
        if let Some(other) = store.user_get(&tenant.id, &user.id).await? {
            anyhow::bail!(
                "tenant {}: id `{}` is both the file's `{}` and the directory's `{}`; give the file's user another id",
                tenant.id,
                user.id,
                user.email,
                other.email
            );
        }
    }
    let cors = loaded
        .cors
        .map(|origins| Arc::new(CorsPolicy::new(origins, &loaded.dialect)));
    Ok(Arc::new(TenantContext {
        tenant,
        cors,
        openapi: Arc::clone(
            documents
                .entry(loaded.dialect.name.clone())
                .or_insert_with(|| Arc::new(crate::openapi::document(&loaded.dialect, None))),
        ),
        dialect: loaded.dialect,
        hosts: config.hosts,
        path_prefix: config.path_prefix,
        access: loaded.access,
        upstream: loaded.upstream,
        migration: loaded.migration.map(Arc::new),
    }))
}
