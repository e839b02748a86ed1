//! The store for several replicas: every replica talks to one Redis.
//!
//! Keys are `<prefix>:{<tenant>}:<kind>:<id>`; the `{tenant}` hash tag puts
//! all of a tenant's keys in one Redis Cluster slot, so every multi-key
//! script stays on one node. One key stands for every tenant: the
//! generation of signing keys (see [`secrets`]). Entries with a natural end (revocations,
//! families, lockout counters) carry a TTL equal to the time they have left.
//! Every call is bounded by the configured timeout and fails closed.
//!
//! Writes that can make a cached answer false are announced on
//! `<prefix>:events` in the same atomic step; see [`cache`] for how replicas
//! answer the happy path of verify from memory.

mod api_keys;
mod cache;
mod lockout;
mod revocations;
mod secrets;
mod sessions;
mod subscription;
mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{FromRedisValue, IntoConnectionInfo, RedisResult, Script, ScriptInvocation};
use secrecy::{ExposeSecret, SecretString};

use super::{Store, StoreError, StoreResult};
use cache::Cache;
use subscription::{Subscription, heartbeat};

pub use cache::STALENESS;

/// Longest pause between two attempts to reach Redis again.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How to reach Redis, from `[store]`.
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
    /// Bound on every call.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

struct Scripts {
    revoke: Script,
    family_use: Script,
    family_revoke: Script,
    api_key_rotate: Script,
    api_key_of: Script,
    lockout_reserve: Script,
    lockout_settle: Script,
    sessions_add: Script,
    signing_keys_init: Script,
    signing_key_add: Script,
    user_create: Script,
    user_update: Script,
    user_delete: Script,
    user_swap: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            revoke: Script::new(include_str!("revoke.lua")),
            family_use: Script::new(include_str!("family_use.lua")),
            family_revoke: Script::new(include_str!("family_revoke.lua")),
            api_key_rotate: Script::new(include_str!("api_key_rotate.lua")),
            api_key_of: Script::new(include_str!("api_key_of.lua")),
            lockout_reserve: Script::new(concat!(
                include_str!("lockout_clock.lua"),
                include_str!("lockout_reserve.lua")
            )),
            lockout_settle: Script::new(concat!(
                include_str!("lockout_clock.lua"),
                include_str!("lockout_settle.lua")
            )),
            sessions_add: Script::new(include_str!("sessions_add.lua")),
            signing_keys_init: Script::new(concat!(
                include_str!("signing_keys_adopt.lua"),
                include_str!("signing_keys_init.lua")
            )),
            signing_key_add: Script::new(concat!(
                include_str!("signing_keys_adopt.lua"),
                include_str!("signing_key_add.lua")
            )),
            user_create: Script::new(include_str!("user_create.lua")),
            user_update: Script::new(include_str!("user_update.lua")),
            user_delete: Script::new(include_str!("user_delete.lua")),
            user_swap: Script::new(include_str!("user_swap.lua")),
        }
    }
}

/// Key names. The prefix never holds `{` or `}` (config validation), so
/// the tenant is always the hash tag.
struct Keys {
    prefix: String,
}

impl Keys {
    fn of(&self, tenant: &str, kind: &str, id: &str) -> String {
        format!("{}:{{{tenant}}}:{kind}:{id}", self.prefix)
    }

    /// A key the tenant has one of.
    fn tenant(&self, tenant: &str, name: &str) -> String {
        format!("{}:{{{tenant}}}:{name}", self.prefix)
    }

    /// The tenant's API-key hashes: subject -> key hash, key hash -> record.
    fn api_keys(&self, tenant: &str) -> (String, String) {
        (
            self.tenant(tenant, "apikey-of"),
            self.tenant(tenant, "apikeys"),
        )
    }

    fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Incremented by every rotation of any tenant's generated keys.
    fn signing_keys_generation(&self) -> String {
        format!("{}:signing-keys-generation", self.prefix)
    }
}

/// A Redis-backed [`crate::store::Store`], shared by any number of replicas.
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    scripts: Scripts,
    cache: Arc<Cache>,
    /// The last key generation read (see [`secrets`]).
    key_changes: Arc<tokio::sync::watch::Sender<u64>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RedisStore {
    /// Connects (within the connect timeout) and starts listening for other
    /// replicas' revocations.
    pub async fn connect(settings: RedisSettings) -> anyhow::Result<Self> {
        let unusable = |e: redis::RedisError| {
            anyhow::anyhow!("store.url is not a usable Redis URL ({:?})", e.kind())
        };
        let info = settings
            .url
            .expose_secret()
            .into_connection_info()
            .map_err(unusable)?
            .set_tcp_settings(tcp_settings());
        let client = redis::Client::open(info).map_err(unusable)?;
        let address = client.get_connection_info().addr().to_string();
        // One plain attempt first: the manager retries every failure, which
        // would hide a wrong password or database behind a timeout.
        let probe = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.timeout));
        within(
            settings.connect_timeout,
            client.get_multiplexed_async_connection_with_config(&probe),
            &address,
        )
        .await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_max_delay(MAX_RECONNECT_DELAY);
        let conn = within(
            settings.connect_timeout,
            client.get_connection_manager_with_config(config),
            &address,
        )
        .await?;

        let keys = Keys {
            prefix: settings.key_prefix,
        };
        // Read before any tenant reads its keys, so that no rotation after
        // that read goes unnoticed.
        let generation: Option<u64> = within(
            settings.timeout,
            redis::cmd("GET")
                .arg(keys.signing_keys_generation())
                .query_async(&mut conn.clone()),
            &address,
        )
        .await?;
        let key_changes = Arc::new(tokio::sync::watch::Sender::new(generation.unwrap_or(0)));
        let cache = Arc::new(Cache::default());
        let base = Instant::now();
        let heartbeat_channel = format!(
            "{}:heartbeat:{}",
            keys.prefix,
            uuid::Uuid::new_v4().simple()
        );
        let subscription = Subscription {
            client,
            cache: Arc::clone(&cache),
            events: keys.events(),
            heartbeat: heartbeat_channel.clone(),
            base,
            connect_timeout: settings.connect_timeout,
        };
        let tasks = vec![
            tokio::spawn(secrets::follow_key_generation(
                conn.clone(),
                keys.signing_keys_generation(),
                Arc::clone(&key_changes),
                settings.timeout,
            )),
            tokio::spawn(subscription.run()),
            tokio::spawn(heartbeat(
                conn.clone(),
                Arc::clone(&cache),
                heartbeat_channel,
                base,
                settings.timeout,
            )),
        ];
        warn_if_evicting(conn.clone(), settings.timeout).await;
        tracing::info!(%address, prefix = %keys.prefix, "redis store connected");
        Ok(Self {
            conn,
            keys,
            timeout: settings.timeout,
            scripts: Scripts::new(),
            cache,
            key_changes,
            tasks,
        })
    }

    /// Runs one Redis call within the timeout; any failure is the store's.
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> StoreResult<T> {
        let started = std::time::Instant::now();
        let answered = tokio::time::timeout(self.timeout, call).await;
        let failed = !matches!(answered, Ok(Ok(_)));
        crate::meters::store_call("redis", what, started.elapsed(), failed);
        match answered {
            Ok(Ok(value)) => Ok(value),
            failed => {
                // Whatever went wrong, announcements may be going astray too.
                self.cache.distrust();
                Err(StoreError(match failed {
                    Ok(Err(error)) => format!("redis {what}: {error}"),
                    _ => format!("redis {what}: no answer within {:?}", self.timeout),
                }))
            }
        }
    }

    /// Runs one script, given its keys and arguments, as one call.
    async fn invoke<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: &ScriptInvocation<'_>,
    ) -> StoreResult<T> {
        self.call(what, script.invoke_async(&mut self.conn())).await
    }

    /// The channel and message announcing a write: a script's last arguments.
    fn announce(&self, message: String) -> (String, String) {
        (self.keys.events(), message)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// A connection attempt to `address`, given up after `limit`.
async fn within<T>(
    limit: Duration,
    connecting: impl Future<Output = RedisResult<T>>,
    address: &str,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {limit:?}"))
        .and_then(|connected| Ok(connected?))
        .with_context(|| format!("cannot reach Redis at {address}"))
}

fn decode<T: for<'a> serde::Deserialize<'a>>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError(format!("unreadable record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(StoreError::new)
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> StoreResult<()> {
        let _: String = self
            .call("ping", redis::cmd("PING").query_async(&mut self.conn()))
            .await?;
        Ok(())
    }
}

/// Dead peers are noticed by the kernel, not only by timeouts: unacknowledged
/// writes give up after a few seconds, idle connections are probed.
fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(Duration::from_secs(5));
    settings
}

/// Revocations carry a TTL, so a Redis that evicts volatile keys under
/// memory pressure would silently forget them first. Managed Redis often
/// refuses `CONFIG`: then nothing is said.
async fn warn_if_evicting(mut conn: ConnectionManager, timeout: Duration) {
    let mut command = redis::cmd("CONFIG");
    command.arg("GET").arg("maxmemory-policy");
    let asked = command.query_async::<Vec<String>>(&mut conn);
    if let Ok(Ok(reply)) = tokio::time::timeout(timeout, asked).await {
        if let Some(policy) = reply.get(1).filter(|p| *p != "noeviction") {
            tracing::warn!(
                %policy,
                "redis may evict keys under memory pressure, revocations first; set maxmemory-policy noeviction"
            );
        }
    }
}
