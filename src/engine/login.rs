//! Logins: by email and password, or by a company's id. Lockout counts
//! failures on the account and the client address; an attempt holds its
//! place on both while it is hashed, so concurrent guesses stop at exactly
//! the limit while concurrent right answers all go through.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tenant::User;
use super::{
    Engine, EngineError, EngineResult, Grant, Identity, Legacy, LoginRequest, Tenant, password,
    tenant,
};
use crate::store::{Attempt, LockoutPolicy, Reservation, Settle, Store, unix_now};

/// Longest email address that can exist (RFC 5321 path limit).
pub(super) const MAX_EMAIL_LEN: usize = 254;
/// Longest an attempt in flight holds its place on its counters: the wait
/// for a hashing slot and the hash itself take less.
pub const ATTEMPT_HOLD: Duration = Duration::from_secs(60);
/// How long an attempt waits for others in flight to settle before it is
/// answered `unavailable`, and how often it asks again meanwhile.
const BUSY_WAIT: Duration = Duration::from_secs(10);
const BUSY_RETRY: Duration = Duration::from_millis(20);
const BUSY_RETRY_MAX: Duration = Duration::from_millis(160);

/// An attempt holding its place on its lockout counters until settled.
/// Dropped unsettled (the client went away mid-login), it gives its place
/// back at once rather than holding it for [`ATTEMPT_HOLD`].
struct Held {
    store: Arc<dyn Store>,
    tenant: String,
    policy: LockoutPolicy,
    counters: Vec<String>,
    reservation: Option<Reservation>,
}

impl Held {
    async fn settle(&mut self, outcome: Settle<'_>) -> EngineResult<()> {
        let Some(reservation) = self.reservation.take() else {
            return Ok(());
        };
        let names: Vec<&str> = self.counters.iter().map(String::as_str).collect();
        Ok(self
            .store
            .lockout_settle(&self.tenant, &names, &reservation, outcome, &self.policy)
            .await?)
    }
}

/// Whose password a login checks.
enum Account {
    File(Arc<User>),
    Directory(crate::store::DirectoryUser),
}

impl Account {
    fn active(&self) -> bool {
        match self {
            Account::File(user) => user.active,
            Account::Directory(user) => user.active,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, tenant, policy) = (Arc::clone(&self.store), self.tenant.clone(), self.policy);
        let counters = std::mem::take(&mut self.counters);
        runtime.spawn(async move {
            let names: Vec<&str> = counters.iter().map(String::as_str).collect();
            let release = Settle::Passed { clear: &[] };
            if let Err(error) = store
                .lockout_settle(&tenant, &names, &reservation, release, &policy)
                .await
            {
                tracing::warn!(%error, "a login attempt's place is held until it expires");
            }
        });
    }
}

impl Engine {
    /// Email and password in, tokens out. Lockout is checked before any
    /// hashing; an unknown account is hashed against a dummy. A right
    /// password on an inactive account is a failure like a wrong one.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn login(&self, tenant: &Tenant, request: LoginRequest) -> EngineResult<Grant> {
        let started = Instant::now();
        let answered = self.login_timed(tenant, request).await;
        record_login(tenant, &answered, started);
        answered
    }

    async fn login_timed(&self, tenant: &Tenant, request: LoginRequest) -> EngineResult<Grant> {
        let email = tenant::normalize_email(&request.email);
        // No account has a longer address (RFC 5321): do not let one become a store key.
        let account = (email.len() <= MAX_EMAIL_LEN).then(|| account_key(&email));
        let ip = request.client_ip.map(address_key);
        let mut held = self
            .hold(tenant, account.iter().cloned().chain(ip).collect())
            .await?;
        let found = match &account {
            Some(_) => self.account(tenant, &email).await,
            None => Ok(None),
        };
        let found = match found {
            Ok(found) => found,
            Err(error) => {
                held.settle(Settle::Passed { clear: &[] }).await?;
                return Err(error);
            }
        };
        let LoginRequest {
            password,
            legacy,
            remember,
            with_api_key,
            ..
        } = request;
        let checked = match (found, legacy) {
            (None, Some(legacy)) if account.is_some() => {
                self.migrate(tenant, &email, password, legacy.as_ref())
                    .await
            }
            (found, _) => self.check_password(tenant, found, password).await,
        };
        let checked = match checked {
            Ok(checked) => checked,
            Err(error) => {
                held.settle(Settle::Passed { clear: &[] }).await?;
                return Err(error);
            }
        };
        let (account_found, rehashed) = match checked {
            Some((found, true, rehashed)) if found.active() => (found, rehashed),
            Some((_, true, _)) => {
                held.settle(Settle::Failed).await?;
                return Err(EngineError::AccountInactive);
            }
            found => {
                held.settle(Settle::Failed).await?;
                return Err(match (found, tenant.uniform_login_errors) {
                    (_, true) => EngineError::InvalidCredentials,
                    (None, false) => EngineError::UnknownUser,
                    (Some(_), false) => EngineError::WrongPassword,
                });
            }
        };
        // A success clears the account's failures, not the address's: logging
        // in with your own account does not reset a spraying address.
        let clear: Vec<&str> = account.as_deref().into_iter().collect();
        held.settle(Settle::Passed { clear: &clear }).await?;
        let refresh_ttl = if remember {
            tenant.lifetimes.remember_refresh
        } else {
            tenant.lifetimes.refresh
        };
        let (mut grant, subject) = match account_found {
            Account::File(user) => {
                if user.demo && !user.email_verified {
                    return Err(EngineError::EmailUnverified);
                }
                let grant = self
                    .start_session(tenant, Identity::of_user(&user), refresh_ttl)
                    .await?
                    .0;
                (grant, user.id.clone())
            }
            Account::Directory(user) => {
                let (grant, family) = self
                    .start_session(tenant, Identity::of_directory_user(&user), refresh_ttl)
                    .await?;
                self.logged_in(tenant, &user, rehashed, &family, grant.refresh_expires_in)
                    .await?;
                (grant, user.id)
            }
        };
        if with_api_key {
            grant.api_key = Some(self.current_api_key(tenant, &subject).await?);
        }
        Ok(grant)
    }

    /// The account with `email`: the tenant file's, else the directory's.
    async fn account(&self, tenant: &Tenant, email: &str) -> EngineResult<Option<Account>> {
        if let Some(user) = tenant.user_by_email(email) {
            return Ok(Some(Account::File(Arc::clone(user))));
        }
        let stored = self.store.user_find(&tenant.id, email).await?;
        Ok(stored.map(Account::Directory))
    }

    /// Checks `password` against the account's hash (an unknown account's
    /// against a dummy, so that it takes as long). A directory user's hash
    /// that is not the tenant's argon2id is made again in the same job.
    async fn check_password(
        &self,
        tenant: &Tenant,
        found: Option<Account>,
        password: secrecy::SecretString,
    ) -> EngineResult<Option<(Account, bool, Option<String>)>> {
        let params = &tenant.accounts.params;
        let (hash, rehash) = match &found {
            None => (Arc::clone(&tenant.accounts.dummy_hash), None),
            Some(Account::File(user)) => (Arc::clone(&user.password_hash), None),
            Some(Account::Directory(user)) => {
                let current = password::is_argon2id_with(&user.password_hash, params);
                let rehash = (!current).then(|| params.clone());
                (Arc::from(user.password_hash.as_str()), rehash)
            }
        };
        let done = self
            .hasher
            .verify_and_rehash(hash, password, rehash)
            .await
            .map_err(super::directory::hash_failed)?;
        Ok(found.map(|found| (found, done.matches, done.hashed)))
    }

    /// A user no directory knows, asked of the vendor the tenant is moving
    /// off: when the vendor takes the login, the user is created here with
    /// an argon2id hash of the password, and the vendor is never asked
    /// about it again. The email of a user deleted here is never asked
    /// about. A refusal costs the dummy hash too, so that it takes no less
    /// than a wrong password.
    async fn migrate(
        &self,
        tenant: &Tenant,
        email: &str,
        password: secrecy::SecretString,
        legacy: &dyn Legacy,
    ) -> EngineResult<Option<(Account, bool, Option<String>)>> {
        if self.store.email_retired(&tenant.id, email).await? || !legacy.accepts().await {
            return self.check_password(tenant, None, password).await;
        }
        let hash = self
            .hasher
            .hash(password.clone(), tenant.accounts.params.clone())
            .await
            .map_err(super::directory::hash_failed)?;
        let user = crate::store::DirectoryUser {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.to_owned(),
            password_hash: hash,
            roles: Vec::new(),
            active: true,
            email_verified: false,
            company_id: None,
            created_at: unix_now(),
            last_login_at: None,
            sessions_epoch: 0,
        };
        if self.store.user_create(&tenant.id, &user).await? {
            tracing::info!(tenant = %tenant.id, subject = %user.id, "user moved over from the legacy vendor");
            return Ok(Some((Account::Directory(user), true, None)));
        }
        // Created meanwhile (its own concurrent login, an import, an
        // operator): that user is checked against its own hash.
        let found = self.store.user_find(&tenant.id, email).await?;
        self.check_password(tenant, found.map(Account::Directory), password)
            .await
    }

    /// Notes a directory user's login (its time, and its new hash if it
    /// was rehashed). If the user changed meanwhile in a way that ends its
    /// sessions (deactivated, deleted, a new password, logout everywhere),
    /// the session just started ends too and the login fails.
    async fn logged_in(
        &self,
        tenant: &Tenant,
        user: &crate::store::DirectoryUser,
        rehashed: Option<String>,
        family: &str,
        refresh_expires_in: Option<u64>,
    ) -> EngineResult<()> {
        let mut noted = user.clone();
        noted.last_login_at = Some(unix_now());
        if let Some(hash) = rehashed {
            noted.password_hash = hash;
        }
        if self
            .store
            .user_swap(&tenant.id, user, &noted, crate::store::Persist::Soon)
            .await?
        {
            return Ok(());
        }
        let now = self.store.user_get(&tenant.id, &user.id).await?;
        match now {
            // Changed in a way that leaves its sessions (roles, another
            // login's time): this one stands, its time is not noted.
            Some(now) if now.active && now.sessions_epoch == user.sessions_epoch => Ok(()),
            _ => {
                let end = unix_now().saturating_add(refresh_expires_in.unwrap_or_default());
                self.revoke_family(tenant, family, end).await?;
                Err(if tenant.uniform_login_errors {
                    EngineError::InvalidCredentials
                } else {
                    EngineError::AccountInactive
                })
            }
        }
    }

    /// A company logs in by its registered id (no password).
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn client_login(
        &self,
        tenant: &Tenant,
        company_id: &str,
        client_ip: Option<IpAddr>,
    ) -> EngineResult<Grant> {
        let started = Instant::now();
        let answered = self.client_login_timed(tenant, company_id, client_ip).await;
        record_login(tenant, &answered, started);
        answered
    }

    async fn client_login_timed(
        &self,
        tenant: &Tenant,
        company_id: &str,
        client_ip: Option<IpAddr>,
    ) -> EngineResult<Grant> {
        let mut held = self
            .hold(tenant, client_ip.map(address_key).into_iter().collect())
            .await?;
        let Some(company) = tenant.company(company_id) else {
            held.settle(Settle::Failed).await?;
            return Err(EngineError::UnknownUser);
        };
        held.settle(Settle::Passed { clear: &[] }).await?;
        let identity = Identity::of_company(company);
        Ok(self
            .start_session(tenant, identity, tenant.lifetimes.refresh)
            .await?
            .0)
    }

    /// Holds a place for one attempt on every counter together: refused
    /// by either, it holds neither. While attempts in flight could still
    /// reach the limit, it waits for them to settle.
    async fn hold(&self, tenant: &Tenant, counters: Vec<String>) -> EngineResult<Held> {
        let mut held = Held {
            store: Arc::clone(&self.store),
            tenant: tenant.id.clone(),
            policy: tenant.lockout,
            counters,
            reservation: None,
        };
        if held.counters.is_empty() {
            return Ok(held);
        }
        let names: Vec<&str> = held.counters.iter().map(String::as_str).collect();
        let started = Instant::now();
        let mut retry = BUSY_RETRY;
        loop {
            match self
                .store
                .lockout_reserve(&tenant.id, &names, &tenant.lockout)
                .await?
            {
                Attempt::Allowed(reservation) => {
                    drop(names);
                    held.reservation = Some(reservation);
                    return Ok(held);
                }
                Attempt::Locked { retry_after } => {
                    return Err(EngineError::LockedOut {
                        retry_after: retry_after.max(Duration::from_secs(1)),
                    });
                }
                Attempt::Busy if started.elapsed() >= BUSY_WAIT => {
                    return Err(EngineError::Unavailable(format!(
                        "login attempts in flight did not settle within {BUSY_WAIT:?}"
                    )));
                }
                Attempt::Busy => {
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(BUSY_RETRY_MAX);
                }
            }
        }
    }
}

/// Records a login's time under its outcome; a lockout is counted too.
fn record_login(tenant: &Tenant, answered: &EngineResult<Grant>, started: Instant) {
    let outcome = match answered {
        Ok(_) => "success",
        Err(EngineError::LockedOut { .. }) => {
            tenant.meters.lockouts.increment(1);
            "locked_out"
        }
        Err(
            EngineError::UnknownUser
            | EngineError::WrongPassword
            | EngineError::InvalidCredentials
            | EngineError::AccountInactive
            | EngineError::EmailUnverified,
        ) => "rejected",
        Err(EngineError::Unavailable(_)) => "unavailable",
        Err(_) => "error",
    };
    tenant.meters.login(outcome, started.elapsed());
}

/// The lockout counter of an account, by its normalized email.
pub(super) fn account_key(email: &str) -> String {
    format!("acct:{email}")
}

/// The lockout counter of a client address; IPv6 clients are counted per
/// /64, the block one host usually holds.
fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => format!("ip:{v4}"),
    }
}
