//! API keys: derived from tenant, subject and generation, so the same key
//! can be shown again while only its hash is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{
    ApiKey, CredentialKind, Engine, EngineError, EngineResult, Identity, Tenant, TokenProblem,
};
use crate::store::{ApiKeyRecord, unix_now};

/// Prefix of every API key polyauth issues; never a valid JWT.
const API_KEY_PREFIX: &str = "pa_";

impl Engine {
    /// A new API key for the holder of `access_token`; the previous one stops
    /// working. Only its hash is stored.
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub async fn generate_api_key(
        &self,
        tenant: &Tenant,
        access_token: &str,
    ) -> EngineResult<ApiKey> {
        let (_, identity) = self
            .authenticate(tenant, access_token, CredentialKind::AccessToken)
            .await?;
        let generation = self
            .store
            .api_key_of(&tenant.id, &identity.subject)
            .await?
            .map_or(0, |(_, record)| record.generation + 1);
        let key = self
            .issue_api_key(tenant, &identity.subject, generation)
            .await?;
        Ok(ApiKey {
            key,
            subject: identity.subject,
            email: identity.email,
        })
    }

    /// The subject's current API key, made (generation 0) if it has none.
    /// Keys are derived, so the same key can be shown on every login while
    /// only its hash is stored.
    pub(super) async fn current_api_key(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> EngineResult<String> {
        match self.store.api_key_of(&tenant.id, subject).await? {
            Some((hash, record)) => {
                let key = self
                    .derive_api_key(tenant, subject, record.generation)
                    .await?;
                if api_key_hash(&key) == hash {
                    return Ok(key);
                }
                // Not derivable (made before derivation, or a lost secret): rotate.
                self.issue_api_key(tenant, subject, record.generation + 1)
                    .await
            }
            None => self.issue_api_key(tenant, subject, 0).await,
        }
    }

    /// Ends a working API key: its holder's key moves on to the next
    /// generation, shown to no one until the holder asks for a key again.
    /// The holder may be inactive or removed: the key stays dead when the
    /// holder comes back.
    pub(super) async fn revoke_api_key(&self, tenant: &Tenant, key: &str) -> EngineResult<()> {
        let record = self.api_key_record(tenant, key).await?;
        self.issue_api_key(tenant, &record.subject, record.generation + 1)
            .await
            .map(drop)
    }

    /// Makes the key of `generation` the subject's only one.
    pub(super) async fn issue_api_key(
        &self,
        tenant: &Tenant,
        subject: &str,
        generation: u64,
    ) -> EngineResult<String> {
        let key = self.derive_api_key(tenant, subject, generation).await?;
        let record = ApiKeyRecord {
            subject: subject.to_owned(),
            created_at: unix_now(),
            generation,
        };
        self.store
            .api_key_rotate(&tenant.id, &api_key_hash(&key), &record)
            .await?;
        Ok(key)
    }

    /// HMAC-SHA256 of tenant, subject and generation under the tenant's
    /// configured secret, or a random one kept in the store (shared by replicas).
    async fn derive_api_key(
        &self,
        tenant: &Tenant,
        subject: &str,
        generation: u64,
    ) -> EngineResult<String> {
        use hmac::Mac;
        use secrecy::ExposeSecret;
        let secret = match &tenant.api_key_secret {
            Some(configured) => configured.expose_secret().as_bytes().to_vec(),
            None => {
                let mut candidate = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut candidate);
                self.store
                    .secret_get_or_insert(&tenant.id, "api-key-derivation", candidate)
                    .await?
            }
        };
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret)
            .map_err(|e| EngineError::Internal(anyhow::anyhow!("api key secret: {e}")))?;
        for part in [tenant.id.as_bytes(), b"\x1f", subject.as_bytes(), b"\x1f"] {
            mac.update(part);
        }
        mac.update(&generation.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        Ok(format!(
            "{API_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(digest)
        ))
    }

    pub(super) async fn verify_api_key(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> EngineResult<Identity> {
        Ok(self.api_key_holder(tenant, key).await?.1)
    }

    /// The record of a working API key and who holds it now.
    pub(super) async fn api_key_holder(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> EngineResult<(ApiKeyRecord, Identity)> {
        let record = self.api_key_record(tenant, key).await?;
        let invalid = || EngineError::InvalidToken(TokenProblem::Invalid);
        if let Some(user) = tenant.user_by_id(&record.subject) {
            let user = Some(user).filter(|u| u.active).ok_or_else(invalid)?;
            return Ok((record, Identity::of_user(user)));
        }
        // A directory user's key is read with the user, each time: a user
        // deleted or deactivated on any replica has no working key.
        let user = self.store.user_get(&tenant.id, &record.subject).await?;
        let user = user.filter(|u| u.active).ok_or_else(invalid)?;
        Ok((record, Identity::of_directory_user(&user)))
    }

    /// The record of a working API key, whatever its holder's state now.
    async fn api_key_record(&self, tenant: &Tenant, key: &str) -> EngineResult<ApiKeyRecord> {
        let invalid = || EngineError::InvalidToken(TokenProblem::Invalid);
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(invalid());
        }
        self.store
            .api_key_get(&tenant.id, &api_key_hash(key))
            .await?
            .ok_or_else(invalid)
    }
}

/// API keys carry 256 random bits, so a fast hash is enough to store them.
fn api_key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
