//! Where polyauth keeps what must outlive a request: revocations, refresh
//! families, API-key hashes, lockout counters, generated signing keys and
//! each tenant's user directory.
//!
//! One trait (made of one small trait per concern), one behaviour, several
//! backends; every entry with a natural end is forgotten once that end has
//! passed, so a store does not grow.

mod embedded;
mod redis;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use embedded::{EmbeddedStore, StoreInUse};
pub use redis::{RedisSettings, RedisStore, STALENESS as REDIS_STALENESS};

/// The store could not be reached or answered something unreadable.
/// Callers fail closed on it.
#[derive(Debug, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Whether a token may still be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Revoked,
}

/// What happened when a refresh token was presented to its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyUse {
    /// The token was the family's current one (and, if asked, it is now rotated).
    Current,
    /// The token had already been rotated out: the family is now revoked.
    Reused,
    /// The family is revoked, expired or unknown.
    Dead,
}

/// The answer to asking whether a login attempt may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead; settle the reservation once the outcome is known.
    Allowed(Reservation),
    Locked {
        retry_after: Duration,
    },
    /// Attempts in flight could still take a counter to its limit: ask
    /// again once some of them have settled.
    Busy,
}

/// A login attempt in flight, holding its place on its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The attempt's own id, which its hold is known by.
    pub id: String,
    /// No counter had a failure when the attempt was reserved, so one that
    /// passes has nothing to clear (a store may then settle it without a
    /// write; a failure counted meanwhile is one that came after it).
    pub clean: bool,
}

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle<'a> {
    /// It failed: one more failure on every counter.
    Failed,
    /// It did not fail: it counts on none, and the counters in `clear`
    /// forget their failures.
    Passed { clear: &'a [&'a str] },
}

/// Limits of one lockout counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub lock_for: Duration,
    /// Longest an attempt in flight holds its place (a replica that dies
    /// mid-login gives it back then).
    pub hold: Duration,
}

/// What an API key stands for; the key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub subject: String,
    pub created_at: u64,
    /// How many times the subject's key was rotated before this one.
    #[serde(default)]
    pub generation: u64,
}

/// Email matching is case-insensitive: emails are kept and looked up as
/// this makes them.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A user of a tenant's directory. Its email is kept normalized
/// ([`normalize_email`]) and never changes; its id never does either.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: String,
    pub email: String,
    /// In any scheme `engine::hashes` reads.
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub active: bool,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub company_id: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    #[serde(default)]
    pub last_login_at: Option<u64>,
    /// Bumped whenever every session of the user must end (deactivated,
    /// a new password, logout everywhere): a login that read the user
    /// before keeps no session it started meanwhile.
    #[serde(default)]
    pub sessions_epoch: u64,
}

impl std::fmt::Debug for DirectoryUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"[REDACTED]")
            .field("roles", &self.roles)
            .field("active", &self.active)
            .field("email_verified", &self.email_verified)
            .field("company_id", &self.company_id)
            .field("created_at", &self.created_at)
            .field("last_login_at", &self.last_login_at)
            .field("sessions_epoch", &self.sessions_epoch)
            .finish()
    }
}

/// When a write must be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Before the call returns: what an operator changes.
    Now,
    /// Within a second, like a login's session (what a login writes: its
    /// time, a rehash); a crash in that second undoes it.
    Soon,
}

/// What creating a directory user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// A user of the tenant has that email: nothing was written.
    EmailTaken,
    /// A user of the tenant has that id: nothing was written.
    IdTaken,
}

/// One page of a directory, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<DirectoryUser>,
    /// The id to pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// A signing key generated by polyauth (no `[[keys]]` configured).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSigningKey {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER of the private key.
    pub pkcs8_der: Vec<u8>,
    /// When it was made (unix seconds; 0 for keys of earlier versions).
    #[serde(default)]
    pub created_at: u64,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("pkcs8_der", &"[REDACTED]")
            .finish()
    }
}

/// Revocations of single tokens.
#[async_trait]
pub trait Revocations {
    /// Marks a token id dead until `expires_at` (unix seconds).
    async fn revoke_token(&self, tenant: &str, jti: &str, expires_at: u64) -> StoreResult<()>;

    /// Revokes a token id unless it already is; `true` when this call did it.
    /// Atomic: of concurrent callers, exactly one wins.
    async fn revoke_token_once(
        &self,
        tenant: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<bool>;

    /// Is this token, or the refresh family it belongs to, revoked?
    async fn token_state(
        &self,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) -> StoreResult<TokenState>;
}

/// Sessions: refresh families, one current token each.
#[async_trait]
pub trait Sessions {
    /// Starts a refresh family whose current token is `jti`.
    async fn family_start(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
    ) -> StoreResult<()>;

    /// Presents refresh token `jti` of `family`; when `next` is given and the
    /// token is current, atomically makes `next` the current token.
    async fn family_use(
        &self,
        tenant: &str,
        family: &str,
        jti: &str,
        next: Option<&str>,
    ) -> StoreResult<FamilyUse>;

    /// When a live (known, unrevoked) family ends, if it is live.
    async fn family_end(&self, tenant: &str, family: &str) -> StoreResult<Option<u64>>;

    /// The current refresh token id of a live family, if it is live; a read
    /// only (unlike [`Sessions::family_use`], a rotated-out id changes nothing).
    async fn family_current(&self, tenant: &str, family: &str) -> StoreResult<Option<String>>;

    /// Revokes a whole family until `expires_at`.
    async fn family_revoke(&self, tenant: &str, family: &str, expires_at: u64) -> StoreResult<()>;

    /// Counts `family` (ending at `expires_at`) among `subject`'s sessions
    /// and, atomically, takes the oldest beyond `max` out of the count:
    /// those are answered, with their ends, for the caller to revoke.
    /// Sessions that have ended no longer count.
    async fn sessions_add(
        &self,
        tenant: &str,
        subject: &str,
        family: &str,
        expires_at: u64,
        max: u32,
    ) -> StoreResult<Vec<(String, u64)>>;

    /// The subject's sessions that have not ended (revoked ones included),
    /// oldest first, with their ends: what "end every session" revokes.
    async fn sessions_of(&self, tenant: &str, subject: &str) -> StoreResult<Vec<(String, u64)>>;

    /// What a login writes: [`Sessions::family_start`], then
    /// [`Sessions::sessions_add`] of that family, listed until its end plus
    /// `access_secs` (the longest an access token minted from it lives: a
    /// refresh just before the end mints one that outlives the family, and
    /// ending the subject's sessions must still find it), then the
    /// revocation of each family that takes out of the count, until its
    /// listed end. Answers those families with their listed ends. A backend
    /// may do it all in one step, so that a crash keeps all of it or none.
    #[allow(clippy::too_many_arguments)]
    async fn session_start(
        &self,
        tenant: &str,
        subject: &str,
        family: &str,
        jti: &str,
        expires_at: u64,
        max: u32,
        access_secs: u64,
    ) -> StoreResult<Vec<(String, u64)>> {
        self.family_start(tenant, family, jti, expires_at).await?;
        let listed = expires_at.saturating_add(access_secs);
        let evicted = self
            .sessions_add(tenant, subject, family, listed, max)
            .await?;
        let last_access = unix_now().saturating_add(access_secs);
        for (old, end) in &evicted {
            self.family_revoke(tenant, old, (*end).max(last_access))
                .await?;
        }
        Ok(evicted)
    }
}

/// API keys, one per subject, kept by hash.
#[async_trait]
pub trait ApiKeys {
    /// Makes `key_hash` the subject's only API key (the previous one stops working).
    async fn api_key_rotate(
        &self,
        tenant: &str,
        key_hash: &str,
        record: &ApiKeyRecord,
    ) -> StoreResult<()>;

    async fn api_key_get(&self, tenant: &str, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;

    /// The subject's current API key: its hash and record.
    async fn api_key_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> StoreResult<Option<(String, ApiKeyRecord)>>;
}

/// Lockout counters of login attempts.
#[async_trait]
pub trait Lockout {
    /// Atomically asks to try a login against every one of `counters` (an
    /// account and a client address). Failures count, attempts in flight
    /// hold a place: an attempt is `Allowed` only if no counter is locked
    /// and on each, failures plus attempts in flight stay under
    /// `max_failures`; then it holds a place on each until settled (or for
    /// `hold`). `Busy` when only attempts in flight stand in the way.
    async fn lockout_reserve(
        &self,
        tenant: &str,
        counters: &[&str],
        policy: &LockoutPolicy,
    ) -> StoreResult<Attempt>;

    /// Ends a reserved attempt on `counters`. A failure counts on each; the
    /// one that reaches `max_failures` within `window` locks that counter for
    /// `lock_for`.
    async fn lockout_settle(
        &self,
        tenant: &str,
        counters: &[&str],
        reservation: &Reservation,
        outcome: Settle<'_>,
        policy: &LockoutPolicy,
    ) -> StoreResult<()>;

    /// Forgets `counter`'s failures and its lock (an operator unlocking an
    /// account); attempts in flight keep their places.
    async fn lockout_clear(&self, tenant: &str, counter: &str) -> StoreResult<()>;
}

/// Each tenant's user directory. Emails are unique within a tenant and
/// matched case-insensitively; ids are the subjects of the users' tokens.
#[async_trait]
pub trait Users {
    /// Adds `user` (its email normalized), unless a user of the tenant
    /// already has that email: `false` then. Atomic: of concurrent creates
    /// with one email, exactly one succeeds.
    async fn user_create(&self, tenant: &str, user: &DirectoryUser) -> StoreResult<bool>;

    /// [`Users::user_create`] of each of `users` in turn, in as few steps
    /// as the backend can (an import's batch); a later user sees the earlier.
    async fn users_create_many(
        &self,
        tenant: &str,
        users: &[DirectoryUser],
    ) -> StoreResult<Vec<Created>>;

    async fn user_get(&self, tenant: &str, id: &str) -> StoreResult<Option<DirectoryUser>>;

    /// The user with `email`, in any case.
    async fn user_find(&self, tenant: &str, email: &str) -> StoreResult<Option<DirectoryUser>>;

    /// Up to `limit` users with ids after `after` (from the first without).
    async fn users_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<UsersPage>;

    /// Replaces the stored user with `user.id`, whose email must be the
    /// stored one; `false` when there is none.
    async fn user_update(&self, tenant: &str, user: &DirectoryUser) -> StoreResult<bool>;

    /// Deletes the user with `id`, freeing its email; `false` when there is none.
    async fn user_delete(&self, tenant: &str, id: &str) -> StoreResult<bool>;

    /// Replaces the stored user with `new` if it is still exactly
    /// `expected`; `false` when it changed meanwhile (or is gone): how
    /// changes to a user never undo each other. `persist` says when it must
    /// be durable.
    async fn user_swap(
        &self,
        tenant: &str,
        expected: &DirectoryUser,
        new: &DirectoryUser,
        persist: Persist,
    ) -> StoreResult<bool>;

    /// Remembers that `email` belonged to a deleted user of the tenant (for
    /// good): lazy migration never brings it back from the vendor.
    async fn email_retire(&self, tenant: &str, email: &str) -> StoreResult<()>;

    /// Whether `email` (normalized) belonged to a deleted user.
    async fn email_retired(&self, tenant: &str, email: &str) -> StoreResult<bool>;
}

/// Generated signing keys and tenant secrets.
///
/// A tenant with no `[[keys]]` has a list of generated keys, newest first:
/// the newest signs, the older ones still verify what they signed.
#[async_trait]
pub trait Secrets {
    /// The tenant's generated keys, newest first; with none yet, `candidate`
    /// becomes the only one (the first writer wins, so replicas agree).
    async fn signing_keys_get_or_init(
        &self,
        tenant: &str,
        candidate: StoredSigningKey,
    ) -> StoreResult<Vec<StoredSigningKey>>;

    /// Makes `key` the tenant's newest key (a rotation), and forgets the
    /// keys that can no longer verify anything: see [`forget_superseded`].
    /// Atomic; tells [`Secrets::signing_keys_changes`]. Answers the keys as
    /// they now are, newest first.
    async fn signing_key_add(
        &self,
        tenant: &str,
        key: StoredSigningKey,
        forget_before: u64,
    ) -> StoreResult<Vec<StoredSigningKey>>;

    /// Changes whenever a rotation adds a key to any tenant: at once in the
    /// process that made it, and within a second in every process sharing
    /// the store. The value means nothing beyond that it changed.
    fn signing_keys_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// A tenant secret named `name`, storing `candidate` if there is none
    /// yet (the first writer wins, so replicas agree).
    async fn secret_get_or_insert(
        &self,
        tenant: &str,
        name: &str,
        candidate: Vec<u8>,
    ) -> StoreResult<Vec<u8>>;
}

/// Forgets, from `keys` (newest first), every key whose successor was made
/// before `forget_before` (unix seconds): the caller passes now less the
/// longest a token may live, so such a key can verify nothing any more.
/// Every backend keeps this rule.
pub fn forget_superseded(keys: &mut Vec<StoredSigningKey>, forget_before: u64) {
    let keep = keys
        .windows(2)
        .position(|pair| pair[0].created_at < forget_before)
        .map_or(keys.len(), |successor| successor + 1);
    keys.truncate(keep);
}

/// The operations every backend offers. Tenant ids namespace every key.
#[async_trait]
pub trait Store:
    Revocations + Sessions + ApiKeys + Lockout + Secrets + Users + Send + Sync + 'static
{
    /// Cheap reachability check, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Makes every write so far durable; the gateway calls it once it has
    /// stopped serving. Stores whose writes are durable when they return
    /// have nothing to do.
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Which backend to open, and where.
pub enum StoreSettings {
    /// One redb file at `path`, for a single process.
    Embedded { path: PathBuf },
    /// One Redis shared by every replica.
    Redis(RedisSettings),
}

/// Opens (or connects to) the configured backend.
pub async fn open(settings: StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match settings {
        StoreSettings::Embedded { path } => Arc::new(
            EmbeddedStore::open(&path)
                .with_context(|| format!("cannot open the store at {}", path.display()))?,
        ),
        StoreSettings::Redis(settings) => Arc::new(RedisStore::connect(settings).await?),
    })
}

/// Seconds since the unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Milliseconds since the unix epoch.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
