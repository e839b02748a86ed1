//! The engine's operations as one typed call and one typed outcome: what a
//! dialect route decodes a request into, and what it renders.

use std::net::IpAddr;

use super::{
    ApiKey, CredentialKind, Engine, EngineResult, Grant, LoginRequest, RevokeScope, Tenant,
};

/// One engine operation with its inputs. Not `Debug`: it holds secrets.
pub enum Call {
    Login(LoginRequest),
    ClientLogin {
        company_id: String,
        client_ip: Option<IpAddr>,
    },
    /// A refresh token for a new access token; with `rotate`, a new refresh
    /// token too.
    Refresh {
        token: String,
        rotate: bool,
    },
    /// A sliding session: a live access token for a fresh one, once.
    Slide {
        token: String,
    },
    Revoke {
        token: String,
        kind: CredentialKind,
        scope: RevokeScope,
    },
    GenerateApiKey {
        token: String,
    },
}

/// What a call answers. Not `Debug`: it holds secrets.
pub enum Outcome {
    Grant(Grant),
    ApiKey(ApiKey),
    /// Done; nothing to show (a revocation).
    Done,
}

impl Engine {
    /// Runs one operation for `tenant`.
    pub async fn call(&self, tenant: &Tenant, call: Call) -> EngineResult<Outcome> {
        Ok(match call {
            Call::Login(request) => Outcome::Grant(self.login(tenant, request).await?),
            Call::ClientLogin {
                company_id,
                client_ip,
            } => Outcome::Grant(self.client_login(tenant, &company_id, client_ip).await?),
            Call::Refresh { token, rotate } => {
                Outcome::Grant(self.refresh(tenant, &token, rotate).await?)
            }
            Call::Slide { token } => Outcome::Grant(self.slide(tenant, &token).await?),
            Call::Revoke { token, kind, scope } => {
                self.revoke(tenant, &token, kind, scope).await?;
                Outcome::Done
            }
            Call::GenerateApiKey { token } => {
                Outcome::ApiKey(self.generate_api_key(tenant, &token).await?)
            }
        })
    }
}
