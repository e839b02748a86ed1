//! argon2id verification on a bounded blocking pool, never on async workers.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Largest argon2 memory cost accepted in a PHC string: 1 GiB, in KiB.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest time cost accepted: beyond this a login takes seconds.
pub const MAX_TIME_COST: u32 = 64;
/// Largest parallelism accepted.
pub const MAX_PARALLELISM: u32 = 64;

/// OWASP's first recommended argon2id setting (m=19 MiB, t=2, p=1).
pub fn default_params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

/// Checks that `phc` is an argon2id PHC string with sane parameters.
pub fn validate_phc(phc: &str) -> Result<Params, String> {
    let hash = PasswordHash::new(phc).map_err(|e| format!("malformed PHC string ({e})"))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash uses `{}`; only argon2id is accepted",
            hash.algorithm
        ));
    }
    let params = Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters ({e})"))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(format!(
            "argon2 memory cost m={} KiB exceeds the 1 GiB bound",
            params.m_cost()
        ));
    }
    if params.t_cost() > MAX_TIME_COST {
        return Err(format!(
            "argon2 time cost t={} exceeds the bound of {MAX_TIME_COST}",
            params.t_cost()
        ));
    }
    if params.p_cost() > MAX_PARALLELISM {
        return Err(format!(
            "argon2 parallelism p={} exceeds the bound of {MAX_PARALLELISM}",
            params.p_cost()
        ));
    }
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err("the PHC string has no salt or no hash".into());
    }
    Ok(params)
}

/// Hashes a password with argon2id and a fresh salt (for `hash-password`).
pub fn hash_password(password: &SecretString, params: Params) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon2
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 failed: {e}"))?;
    Ok(hash.to_string())
}

/// How long a login waits for a hashing slot before it is answered
/// `unavailable`: under a flood, queues stay short instead of growing forever.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a verification did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("every hashing slot stayed busy for {0:?}")]
    Busy(std::time::Duration),
    #[error("argon2 task failed: {0}")]
    Failed(String),
}

/// Runs argon2 verifications, at most `max_concurrent` at once, each on the
/// blocking pool. The permit is taken before the blocking task is spawned, so
/// waiting logins queue here and do not occupy blocking threads.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// `true` when `password` matches `phc`. A malformed hash verifies as false.
    #[tracing::instrument(name = "argon2_verify", skip_all)]
    pub async fn verify(&self, phc: Arc<str>, password: SecretString) -> Result<bool, HashError> {
        let _permit = tokio::time::timeout(QUEUE_WAIT, self.permits.acquire())
            .await
            .map_err(|_| HashError::Busy(QUEUE_WAIT))?
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            tracing::debug!("argon2 verification running");
            let Ok(hash) = PasswordHash::new(&phc) else {
                return false;
            };
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &hash)
                .is_ok()
        })
        .in_current_span()
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_absurd_and_foreign_hashes() {
        assert!(validate_phc("not a hash").is_err());
        let huge = "$argon2id$v=19$m=2097152,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert!(validate_phc(huge).unwrap_err().contains("1 GiB"));
        let argon2i =
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert!(validate_phc(argon2i).unwrap_err().contains("argon2id"));
    }

    #[tokio::test]
    async fn verifies_what_it_hashed() {
        let phc = hash_password(&SecretString::from("correct horse"), default_params()).unwrap();
        assert!(validate_phc(&phc).is_ok());
        let hasher = Hasher::new(1);
        let phc: Arc<str> = phc.into();
        assert!(
            hasher
                .verify(phc.clone(), SecretString::from("correct horse"))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(phc, SecretString::from("wrong"))
                .await
                .unwrap()
        );
    }
}
