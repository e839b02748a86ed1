//! Logins: by email and password, or by a company's id. Lockout counts
//! failures on the account and the client address; an attempt holds its
//! place on both while it is hashed, so concurrent guesses stop at exactly
//! the limit while concurrent right answers all go through.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Engine, EngineError, EngineResult, Grant, Identity, LoginRequest, Tenant, password, tenant,
};
use crate::store::{Attempt, LockoutPolicy, Reservation, Settle, Store};

/// Longest email address that can exist (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
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
        let account = (email.len() <= MAX_EMAIL_LEN).then(|| format!("acct:{email}"));
        let ip = request.client_ip.map(address_key);
        let mut held = self
            .hold(tenant, account.iter().cloned().chain(ip).collect())
            .await?;

        let user = account
            .as_ref()
            .and_then(|_| tenant.user_by_email(&email))
            .cloned();
        let hash = user.as_ref().map_or_else(
            || Arc::clone(&tenant.accounts.dummy_hash),
            |u| Arc::clone(&u.password_hash),
        );
        let matches = match self.hasher.verify(hash, request.password).await {
            Ok(matches) => matches,
            Err(error) => {
                held.settle(Settle::Passed { clear: &[] }).await?;
                return Err(match error {
                    password::HashError::Busy(_) => EngineError::Unavailable(error.to_string()),
                    password::HashError::Failed(_) => EngineError::Internal(error.into()),
                });
            }
        };
        let user = match (user, matches) {
            (Some(user), true) if user.active => user,
            (Some(_), true) => {
                held.settle(Settle::Failed).await?;
                return Err(EngineError::AccountInactive);
            }
            (user, _) => {
                held.settle(Settle::Failed).await?;
                return Err(match (user, tenant.uniform_login_errors) {
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
        if user.demo && !user.email_verified {
            return Err(EngineError::EmailUnverified);
        }
        let refresh_ttl = if request.remember {
            tenant.lifetimes.remember_refresh
        } else {
            tenant.lifetimes.refresh
        };
        let mut grant = self
            .start_session(tenant, Identity::of_user(&user), refresh_ttl)
            .await?;
        if request.with_api_key {
            grant.api_key = Some(self.current_api_key(tenant, &user.id).await?);
        }
        Ok(grant)
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
        self.start_session(
            tenant,
            Identity::of_company(company),
            tenant.lifetimes.refresh,
        )
        .await
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
