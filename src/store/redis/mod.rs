//! The store for several replicas: every replica talks to one Redis.
//!
//! Keys are `<prefix>:{<tenant>}:<kind>:<id>`; the `{tenant}` hash tag puts
//! all of a tenant's keys in one Redis Cluster slot, so every multi-key
//! script stays on one node. Entries with a natural end (revocations,
//! families, lockout counters) carry a TTL equal to the time they have left.
//! Every call is bounded by the configured timeout and fails closed.
//!
//! Writes that can make a cached answer false are announced on
//! `<prefix>:events` in the same atomic step; see [`cache`] for how replicas
//! answer the happy path of verify from memory.

mod cache;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{AsyncCommands, IntoConnectionInfo, RedisResult, Script};
use secrecy::{ExposeSecret, SecretString};

use super::{
    ApiKeyRecord, ApiKeys, Attempt, FamilyUse, Lockout, LockoutPolicy, Revocations, Secrets,
    Sessions, Store, StoreError, StoreResult, StoredSigningKey, TokenState, unix_now,
};
use cache::{Cache, Event, HEARTBEAT_EVERY, Known};

pub use cache::STALENESS;

/// A subscription that hears nothing, not even its own heartbeat, for this
/// long is torn down and made again.
const SILENCE: Duration = Duration::from_secs(3);
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
    lockout_attempt: Script,
    lockout_release: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            revoke: Script::new(include_str!("revoke.lua")),
            family_use: Script::new(include_str!("family_use.lua")),
            family_revoke: Script::new(include_str!("family_revoke.lua")),
            api_key_rotate: Script::new(include_str!("api_key_rotate.lua")),
            api_key_of: Script::new(include_str!("api_key_of.lua")),
            lockout_attempt: Script::new(include_str!("lockout_attempt.lua")),
            lockout_release: Script::new(include_str!("lockout_release.lua")),
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

    fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
}

/// A Redis-backed [`crate::store::Store`], shared by any number of replicas.
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    scripts: Scripts,
    cache: Arc<Cache>,
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
            tasks,
        })
    }

    /// Runs one Redis call within the timeout; any failure is the store's.
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
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

    /// This replica revoked a family: its own memory learns it at once.
    fn family_dead(&self, tenant: &str, family: &str, until: u64) {
        self.cache.apply(Event::Family {
            tenant: tenant.to_owned(),
            family: family.to_owned(),
            until,
        });
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Writes a token revocation and announces it; `once`: only if it is
    /// not revoked yet. `true` when this call revoked it.
    async fn revoke(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
        once: bool,
    ) -> StoreResult<bool> {
        if expires_at < unix_now() {
            // The token has expired: nothing is left to refuse.
            return Ok(true);
        }
        let mut conn = self.conn();
        let revoked: i64 = self
            .call(
                "revoke",
                self.scripts
                    .revoke
                    .key(self.keys.of(tenant, "revoked", jti))
                    .arg(expires_at)
                    .arg(if once { "once" } else { "always" })
                    .arg(self.keys.events())
                    .arg(Event::message('t', tenant, jti))
                    .invoke_async(&mut conn),
            )
            .await?;
        // Other replicas hear of it through the subscription; this one must
        // not wait for its own announcement to come back.
        self.cache.apply(Event::Token {
            tenant: tenant.to_owned(),
            jti: jti.to_owned(),
        });
        Ok(revoked == 1)
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
        let mut conn = self.conn();
        let _: String = self
            .call("ping", redis::cmd("PING").query_async(&mut conn))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Revocations for RedisStore {
    async fn revoke_token(&self, tenant: &str, jti: &str, expires_at: u64) -> StoreResult<()> {
        self.revoke(tenant, jti, expires_at, false).await.map(drop)
    }

    async fn revoke_token_once(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<bool> {
        self.revoke(tenant, jti, expires_at, true).await
    }

    async fn token_state(
        &self,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) -> StoreResult<TokenState> {
        let ticket = match self.cache.token(tenant, jti, family) {
            Known::Live => return Ok(TokenState::Active),
            Known::Revoked => return Ok(TokenState::Revoked),
            Known::Unknown(ticket) => ticket,
        };
        let mut conn = self.conn();
        let family_key = self.keys.of(tenant, "family", family.unwrap_or_default());
        let (token_revoked, family_revoked): (bool, Option<String>) = self
            .call(
                "token_state",
                redis::pipe()
                    .exists(self.keys.of(tenant, "revoked", jti))
                    .hget(family_key, "revoked")
                    .query_async(&mut conn),
            )
            .await?;
        let family_revoked = family.is_some() && family_revoked.as_deref() == Some("1");
        if token_revoked || family_revoked {
            return Ok(TokenState::Revoked);
        }
        self.cache.remember_live_token(ticket, tenant, jti, family);
        Ok(TokenState::Active)
    }
}

#[async_trait]
impl Sessions for RedisStore {
    async fn family_start(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<()> {
        let key = self.keys.of(tenant, "family", family);
        let end = expires_at.to_string();
        let mut conn = self.conn();
        self.call(
            "family_start",
            redis::pipe()
                .atomic()
                .hset_multiple(&key, &[("current", jti), ("revoked", "0"), ("end", &end)])
                .ignore()
                // Its tokens are valid through second `end`: keep it past that.
                .expire_at(&key, expires_at as i64 + 1)
                .ignore()
                .query_async::<()>(&mut conn),
        )
        .await
    }

    async fn family_use(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        next: Option<&str>,
    ) -> StoreResult<FamilyUse> {
        let mut conn = self.conn();
        let outcome: Vec<u64> = self
            .call(
                "family_use",
                self.scripts
                    .family_use
                    .key(self.keys.of(tenant, "family", family))
                    .arg(jti)
                    .arg(next.unwrap_or_default())
                    .arg(self.keys.events())
                    .arg(Event::message('f', tenant, family))
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(match outcome.as_slice() {
            [1] => FamilyUse::Current,
            [2, until] => {
                self.family_dead(tenant, family, *until);
                FamilyUse::Reused
            }
            _ => FamilyUse::Dead,
        })
    }

    async fn family_end(&self, tenant: &str, family: &str) -> StoreResult<Option<u64>> {
        let mut conn = self.conn();
        let (current, revoked, end): (Option<String>, Option<String>, Option<u64>) = self
            .call(
                "family_end",
                redis::cmd("HMGET")
                    .arg(self.keys.of(tenant, "family", family))
                    .arg(&["current", "revoked", "end"])
                    .query_async(&mut conn),
            )
            .await?;
        let live = current.is_some() && revoked.as_deref() != Some("1");
        Ok(end.filter(|_| live))
    }

    async fn family_revoke(&self, tenant: &str, family: &str, expires_at: u64) -> StoreResult<()> {
        let mut conn = self.conn();
        let until: u64 = self
            .call(
                "family_revoke",
                self.scripts
                    .family_revoke
                    .key(self.keys.of(tenant, "family", family))
                    .arg(expires_at)
                    .arg(self.keys.events())
                    .arg(Event::message('f', tenant, family))
                    .invoke_async(&mut conn),
            )
            .await?;
        self.family_dead(tenant, family, until);
        Ok(())
    }
}

#[async_trait]
impl ApiKeys for RedisStore {
    async fn api_key_rotate(
        &self,
        tenant: &str,
        key_hash: &str,
        record: &ApiKeyRecord,
    ) -> StoreResult<()> {
        let mut conn = self.conn();
        let previous: Option<String> = self
            .call(
                "api_key_rotate",
                self.scripts
                    .api_key_rotate
                    .key(self.keys.tenant(tenant, "apikey-of"))
                    .key(self.keys.tenant(tenant, "apikeys"))
                    .arg(&record.subject)
                    .arg(key_hash)
                    .arg(encode(record)?)
                    .arg(self.keys.events())
                    .arg(Event::prefix('k', tenant))
                    .invoke_async(&mut conn),
            )
            .await?;
        if let Some(hash) = previous {
            self.cache.apply(Event::ApiKey {
                tenant: tenant.to_owned(),
                hash,
            });
        }
        Ok(())
    }

    async fn api_key_get(&self, tenant: &str, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let ticket = match self.cache.api_key(tenant, key_hash) {
            Ok(record) => return Ok(Some(record)),
            Err(ticket) => ticket,
        };
        let mut conn = self.conn();
        let bytes: Option<Vec<u8>> = self
            .call(
                "api_key_get",
                conn.hget(self.keys.tenant(tenant, "apikeys"), key_hash),
            )
            .await?;
        let record: Option<ApiKeyRecord> = bytes.as_deref().map(decode).transpose()?;
        if let Some(record) = &record {
            self.cache
                .remember_api_key(ticket, tenant, key_hash, record);
        }
        Ok(record)
    }

    async fn api_key_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> StoreResult<Option<(String, ApiKeyRecord)>> {
        let mut conn = self.conn();
        let found: Option<(String, Vec<u8>)> = self
            .call(
                "api_key_of",
                self.scripts
                    .api_key_of
                    .key(self.keys.tenant(tenant, "apikey-of"))
                    .key(self.keys.tenant(tenant, "apikeys"))
                    .arg(subject)
                    .invoke_async(&mut conn),
            )
            .await?;
        found
            .map(|(hash, bytes)| Ok((hash, decode(&bytes)?)))
            .transpose()
    }
}

#[async_trait]
impl Lockout for RedisStore {
    async fn lockout_attempt(
        &self,
        tenant: &str,
        counters: &[&str],
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt> {
        let mut conn = self.conn();
        let mut script = self.scripts.lockout_attempt.prepare_invoke();
        for counter in counters {
            script.key(self.keys.of(tenant, "lockout", counter));
        }
        script
            .arg(policy.max_failures)
            .arg(policy.window.as_millis() as u64)
            .arg(policy.lock_for.as_millis() as u64);
        let wait_ms: u64 = self
            .call("lockout_attempt", script.invoke_async(&mut conn))
            .await?;
        Ok(match wait_ms {
            0 => Attempt::Allowed,
            ms => Attempt::Locked {
                retry_after: Duration::from_millis(ms),
            },
        })
    }

    async fn lockout_release(&self, tenant: &str, counter: &str, reset: bool) -> StoreResult<()> {
        let mut conn = self.conn();
        self.call(
            "lockout_release",
            self.scripts
                .lockout_release
                .key(self.keys.of(tenant, "lockout", counter))
                .arg(if reset { "reset" } else { "one" })
                .invoke_async::<()>(&mut conn),
        )
        .await
    }
}

#[async_trait]
impl Secrets for RedisStore {
    async fn signing_key_get_or_insert(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<StoredSigningKey> {
        let mut conn = self.conn();
        let existing: Option<Vec<u8>> = self
            .call(
                "signing_key_get_or_insert",
                redis::cmd("SET")
                    .arg(self.keys.tenant(tenant, "signing-key"))
                    .arg(encode(&candidate)?)
                    .arg("NX")
                    .arg("GET")
                    .query_async(&mut conn),
            )
            .await?;
        existing
            .as_deref()
            .map(decode)
            .transpose()
            .map(|stored| stored.unwrap_or(candidate))
    }

    async fn secret_get_or_insert(
        &self,
        tenant: &str,
        name: &str,
        candidate: Vec<u8>,
    ) -> StoreResult<Vec<u8>> {
        let mut conn = self.conn();
        let existing: Option<Vec<u8>> = self
            .call(
                "secret_get_or_insert",
                redis::cmd("SET")
                    .arg(self.keys.of(tenant, "secret", name))
                    .arg(&candidate)
                    .arg("NX")
                    .arg("GET")
                    .query_async(&mut conn),
            )
            .await?;
        Ok(existing.unwrap_or(candidate))
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

/// Proves the subscription live: a message on our own channel, every
/// [`HEARTBEAT_EVERY`], carrying when it was sent.
async fn heartbeat(
    mut conn: ConnectionManager,
    cache: Arc<Cache>,
    channel: String,
    base: Instant,
    timeout: Duration,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let sent = base.elapsed().as_micros() as u64;
        let published =
            tokio::time::timeout(timeout, conn.publish::<_, _, ()>(&channel, sent)).await;
        if !matches!(published, Ok(Ok(()))) {
            cache.distrust();
        }
    }
}

/// Listens for announcements of writes and for this replica's heartbeats,
/// and comes back by itself when Redis does.
struct Subscription {
    client: redis::Client,
    cache: Arc<Cache>,
    events: String,
    heartbeat: String,
    base: Instant,
    connect_timeout: Duration,
}

impl Subscription {
    async fn run(self) {
        let mut delay = Duration::from_millis(100);
        let mut was_up = true;
        loop {
            let subscribed = tokio::time::timeout(self.connect_timeout, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&[&self.events, &self.heartbeat]).await?;
                RedisResult::Ok(pubsub)
            })
            .await;
            let mut pubsub = match subscribed {
                Ok(Ok(pubsub)) => pubsub,
                failed => {
                    if was_up {
                        let error = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "no answer".into(),
                        };
                        tracing::warn!(%error, "redis subscription down; every check goes to Redis until it is back");
                        was_up = false;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                    continue;
                }
            };
            // Anything announced before this point may have been missed.
            self.cache.resubscribed();
            if !was_up {
                tracing::info!("redis subscription back");
            }
            delay = Duration::from_millis(100);
            let mut messages = pubsub.on_message();
            // Ends when the connection closes or stays silent too long.
            while let Ok(Some(message)) = tokio::time::timeout(SILENCE, messages.next()).await {
                self.handle(&message);
            }
            self.cache.distrust();
            tracing::warn!("redis subscription lost; every check goes to Redis until it is back");
            was_up = false;
        }
    }

    fn handle(&self, message: &redis::Msg) {
        let payload = String::from_utf8_lossy(message.get_payload_bytes());
        if message.get_channel_name() == self.heartbeat {
            // Only a heartbeat sent in the past proves anything.
            let sent = payload
                .parse::<u64>()
                .ok()
                .and_then(|micros| self.base.checked_add(Duration::from_micros(micros)))
                .filter(|sent| *sent <= Instant::now());
            if let Some(sent) = sent {
                self.cache.heartbeat(sent);
            }
        } else {
            match Event::parse(&payload) {
                Some(event) => self.cache.apply(event),
                // A write announced in a form this version cannot read (a
                // newer replica?): forget everything it might have touched.
                None => self.cache.resubscribed(),
            }
        }
    }
}
