//! Assembly: from a loaded configuration to a running gateway. Opens the
//! store, builds every tenant (keys, dummy hash, document) and hands them
//! to [`crate::http`] to serve.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::server::ServerConfig;
use crate::config::{Loaded, LoadedTenant};
use crate::engine::{Engine, keys};
use crate::http::cors::CorsPolicy;
use crate::http::dispatch::Mounted;
use crate::http::{self, AppState, Servers, Stopper, TenantContext};
use crate::store::{self, Store};

/// A running gateway: the public and admin servers and their ports.
pub struct Application {
    port: u16,
    admin_port: u16,
    servers: Servers,
    store: Arc<dyn Store>,
    reloader: Arc<Reloader>,
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
        let server = loaded.server.clone();
        // First of all: from here on SIGHUP reloads (its default would end
        // the process); one that comes while starting reloads once started.
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
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
        let contexts = build_tenants(loaded.tenants, store.as_ref()).await?;
        let (mount, live) = watch::channel(Arc::new(Mounted::new(0, contexts)));
        let routing = Arc::new(http::dispatch::Workers::default());
        tokio::spawn(follow_rotations(
            Arc::downgrade(&store),
            rotations,
            live.clone(),
        ));
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
        let servers = http::serve(state, live, Arc::clone(&routing), listening, public, admin)?;
        let reloader = Arc::new(Reloader {
            dir: loaded.dir,
            server: loaded.server,
            store: Arc::clone(&store),
            mount,
            workers: routing,
            rotations: store.signing_keys_changes(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        });
        reload::listen(&reloader, hangups)?;
        Ok(Self {
            port,
            admin_port,
            servers,
            store,
            reloader,
        })
    }

    /// Reads every tenant and dialect file again and, when they are valid,
    /// serves them instead (what SIGHUP does); on an error the running
    /// configuration stays. Answers the error.
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.reloader.reload().await
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

/// Keeps the key sets of tenants with generated keys in step with the
/// store: after each rotation (by `polyauth keys rotate` on a shared
/// store, or by this process), each such tenant mounted now reads its keys
/// again and its set is swapped whole, so verification never waits on a
/// lock. Holds the store weakly: it ends when the gateway stops.
async fn follow_rotations(
    store: Weak<dyn Store>,
    mut rotations: watch::Receiver<u64>,
    live: http::dispatch::Live,
) {
    while rotations.changed().await.is_ok() {
        let mut retry = RELOAD_RETRY;
        loop {
            let Some(store) = store.upgrade() else {
                return;
            };
            let mounted = Arc::clone(&live.borrow());
            match reload_generated(store.as_ref(), &mounted).await {
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

async fn reload_generated(store: &dyn Store, mounted: &Mounted) -> anyhow::Result<()> {
    for context in &mounted.contexts {
        let Some(grace) = context.generated_grace else {
            continue;
        };
        let tenant = &context.tenant;
        let stored = store
            .signing_keys_get_or_init(&tenant.id, keys::generate_ed25519()?)
            .await?;
        let set = keys::KeySet::generated(&stored, grace)
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

/// Builds every loaded tenant, each with its metrics handles (the same
/// for every build of a tenant id).
async fn build_tenants(
    loaded: Vec<LoadedTenant>,
    store: &dyn Store,
) -> anyhow::Result<Vec<Arc<TenantContext>>> {
    let mut documents = Documents::new();
    let mut contexts = Vec::with_capacity(loaded.len());
    for tenant in loaded {
        let meters = crate::meters::TenantMeters::of(&tenant.config.id);
        contexts.push(build_tenant(tenant, store, &mut documents, meters).await?);
    }
    Ok(contexts)
}

/// Each dialect's OpenAPI document, made once for all its tenants.
type Documents = std::collections::HashMap<String, Arc<utoipa::openapi::OpenApi>>;

async fn build_tenant(
    loaded: LoadedTenant,
    store: &dyn Store,
    documents: &mut Documents,
    meters: crate::meters::TenantMeters,
) -> anyhow::Result<Arc<TenantContext>> {
    let generated_grace = loaded
        .keys
        .is_empty()
        .then(|| keys::rotation_grace(&loaded.lifetimes));
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
        tokio::task::spawn_blocking(move || {
            config.tenant(keyset, limits, claims, api_key_secret, meters)
        })
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
        generated_grace,
    }))
}

/// How long a reload waits for every worker to route by the new set
/// before it says it is done.
const WORKERS_MOUNT: Duration = Duration::from_secs(10);

/// What a reload needs: where the files are, the server settings running
/// (which a reload does not change), the store, and where to mount.
struct Reloader {
    dir: PathBuf,
    server: ServerConfig,
    store: Arc<dyn Store>,
    mount: watch::Sender<Arc<Mounted>>,
    /// What each worker routes by: a reload is done when all route by it.
    workers: Arc<http::dispatch::Workers>,
    /// Key rotations: one that lands while a reload builds is applied to
    /// the set it mounts.
    rotations: watch::Receiver<u64>,
    /// Reloads run one after another, each on the files as it reads them.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Reads the files again, builds every tenant, then mounts them all at
    /// once; any error leaves the running set as it is, logged and counted.
    async fn reload(&self) -> anyhow::Result<()> {
        let _one = self.one_at_a_time.lock().await;
        let started = std::time::Instant::now();
        let done = self.reload_now().await;
        let result = match &done {
            Ok(true) => "success",
            // Mounted, but some worker did not route by it in time.
            Ok(false) => "partial",
            Err(error) => {
                tracing::error!(
                    error = %format!("{error:#}"),
                    "configuration reload refused: the running configuration stays"
                );
                "failure"
            }
        };
        metrics::counter!(crate::meters::CONFIG_RELOADS, "result" => result).increment(1);
        if done.is_ok() {
            tracing::info!(took = ?started.elapsed(), result, "configuration reloaded");
        }
        done.map(drop)
    }

    /// `Ok(false)`: mounted, but not every worker routes by it yet.
    async fn reload_now(&self) -> anyhow::Result<bool> {
        let rotated = *self.rotations.borrow();
        let server = crate::config::load_server_file(&self.dir)?;
        let restart = self.server.needs_restart(&server);
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "server settings changed that need a restart; the reload leaves them as they are"
            );
        }
        let loaded = crate::config::load_tenants(&self.dir, self.server.clone())?;
        let previous = Arc::clone(&self.mount.borrow());
        let contexts = build_tenants(loaded.tenants, self.store.as_ref()).await?;
        let ids = |mounted: &[Arc<TenantContext>]| -> std::collections::BTreeSet<String> {
            mounted.iter().map(|c| c.tenant.id.clone()).collect()
        };
        let (before, after) = (ids(&previous.contexts), ids(&contexts));
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        tracing::info!(
            tenants = after.len(),
            added = ?added,
            removed = ?removed,
            "mounting the reloaded tenants"
        );
        let generation = previous.generation + 1;
        let mounted = Arc::new(Mounted::new(generation, contexts));
        self.mount.send_replace(Arc::clone(&mounted));
        // A rotation while the tenants were built went to the previous set
        // (or to none): read the keys again for the one just mounted.
        // Mounted already: a store that cannot answer now leaves those
        // tenants on the keys they were built with, and is no failure of
        // the reload (which could not be undone).
        if *self.rotations.borrow() != rotated {
            if let Err(error) = reload_generated(self.store.as_ref(), &mounted).await {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    "cannot read keys rotated during the reload; the next rotation or reload reads them"
                );
            }
        }
        let routed = self.workers.all_at(generation, WORKERS_MOUNT).await;
        if !routed {
            tracing::warn!(
                limit = ?WORKERS_MOUNT,
                "not every worker routes by the reloaded tenants yet"
            );
        }
        Ok(routed)
    }
}

/// What makes a reload happen: SIGHUP, and file changes with `watch_config`.
mod reload {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Reloader;

    /// A reload waits until no change came for this long (an editor's
    /// save is several events; a deploy, several files) ...
    const DEBOUNCE: Duration = Duration::from_millis(300);
    /// ... or until changes have kept coming for this long.
    const DEBOUNCE_MAX: Duration = Duration::from_secs(5);

    pub(super) fn listen(
        reloader: &Arc<Reloader>,
        mut hangups: tokio::signal::unix::Signal,
    ) -> anyhow::Result<()> {
        let weak = Arc::downgrade(reloader);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(reloader) = weak.upgrade() else {
                    return;
                };
                tracing::info!(signal = "SIGHUP", "reloading the configuration");
                let _ = reloader.reload().await;
            }
        });
        if reloader.server.watch_config {
            watch(reloader)?;
        }
        Ok(())
    }

    /// Watches `tenants/` and `dialects_dir` and reloads once changes have
    /// settled for [`DEBOUNCE`].
    fn watch(reloader: &Arc<Reloader>) -> anyhow::Result<()> {
        use notify::{RecursiveMode, Watcher};
        let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(
            move |event: notify::Result<notify::Event>| match event {
                Ok(event) if event.kind.is_access() => {}
                Ok(_) => {
                    let _ = changed.send(());
                }
                Err(error) => {
                    tracing::warn!(%error, "watching the configuration: changes may go unseen until SIGHUP");
                }
            },
        )?;
        let mut watched = vec![reloader.dir.join("tenants")];
        watched.extend(reloader.server.dialects_dir.clone());
        for path in &watched {
            watcher.watch(path, RecursiveMode::NonRecursive)?;
        }
        tracing::info!(watched = ?watched, "reloading on configuration changes");
        let weak = Arc::downgrade(reloader);
        tokio::spawn(async move {
            // The watcher lives as long as this task.
            let _watcher = watcher;
            while changes.recv().await.is_some() {
                let first = tokio::time::Instant::now();
                // Until a quiet DEBOUNCE, or DEBOUNCE_MAX of changes.
                while first.elapsed() < DEBOUNCE_MAX {
                    match tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let Some(reloader) = weak.upgrade() else {
                    return;
                };
                tracing::info!("configuration files changed: reloading");
                let _ = reloader.reload().await;
            }
        });
        Ok(())
    }
}
