//! Logins: by email and password, or by a company's id; lockout counts
//! attempts on the account and the client address before any hashing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Engine, EngineError, EngineResult, Grant, Identity, LoginRequest, Tenant, password, tenant,
};
use crate::store::Attempt;

/// Longest email address that can exist (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

impl Engine {
    /// Email and password in, tokens out. Lockout is checked before any
    /// hashing; an unknown account is hashed against a dummy.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn login(&self, tenant: &Tenant, request: LoginRequest) -> EngineResult<Grant> {
        let email = tenant::normalize_email(&request.email);
        // No account has a longer address (RFC 5321): do not let one become a store key.
        let account = (email.len() <= MAX_EMAIL_LEN).then(|| format!("acct:{email}"));
        let ip = request.client_ip.map(address_key);
        self.reserve_attempts(tenant, account.as_deref(), ip.as_deref())
            .await?;

        let user = account.and_then(|_| tenant.user_by_email(&email)).cloned();
        let hash = user.as_ref().map_or_else(
            || Arc::clone(&tenant.accounts.dummy_hash),
            |u| Arc::clone(&u.password_hash),
        );
        let matches = self
            .hasher
            .verify(hash, request.password)
            .await
            .map_err(|e| match e {
                password::HashError::Busy(_) => EngineError::Unavailable(e.to_string()),
                password::HashError::Failed(_) => EngineError::Internal(e.into()),
            })?;
        let user = match (user, matches) {
            (Some(user), true) => user,
            (user, _) => {
                return Err(match (user, tenant.uniform_login_errors) {
                    (_, true) => EngineError::InvalidCredentials,
                    (None, false) => EngineError::UnknownUser,
                    (Some(_), false) => EngineError::WrongPassword,
                });
            }
        };
        self.store
            .lockout_release(&tenant.id, &format!("acct:{email}"), true)
            .await?;
        if let Some(ip) = &ip {
            self.store.lockout_release(&tenant.id, ip, false).await?;
        }
        if !user.active {
            return Err(EngineError::AccountInactive);
        }
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
        let ip = client_ip.map(address_key);
        self.reserve_attempts(tenant, None, ip.as_deref()).await?;
        let Some(company) = tenant.company(company_id) else {
            return Err(EngineError::UnknownUser);
        };
        if let Some(ip) = &ip {
            self.store.lockout_release(&tenant.id, ip, false).await?;
        }
        self.start_session(
            tenant,
            Identity::of_company(company),
            tenant.lifetimes.refresh,
        )
        .await
    }

    /// Reserves one attempt on the account and the client address
    /// together: refused by either, it counts on neither, so under any
    /// concurrency each locks at exactly its own limit.
    async fn reserve_attempts(
        &self,
        tenant: &Tenant,
        account: Option<&str>,
        ip: Option<&str>,
    ) -> EngineResult<()> {
        let counters: Vec<&str> = account.into_iter().chain(ip).collect();
        if counters.is_empty() {
            return Ok(());
        }
        match self
            .store
            .lockout_attempt(&tenant.id, &counters, &tenant.lockout)
            .await?
        {
            Attempt::Allowed => Ok(()),
            Attempt::Locked { retry_after } => Err(EngineError::LockedOut {
                retry_after: retry_after.max(Duration::from_secs(1)),
            }),
        }
    }
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
