//! A tenant's `[[keys]]`: the key material they name is read from a file or
//! the environment and handed to the engine as bytes.

use jsonwebtoken::Algorithm;
use secrecy::ExposeSecret;

use super::secret::SecretSource;
use super::tenant::{KeyAlgorithm, KeyConfig};
use crate::engine::keys::KeyPair;

/// Loads a configured key; the error names the key at fault and says what
/// is wrong, never the key.
pub fn load_configured(config: &KeyConfig) -> Result<KeyPair, (String, String)> {
    let kid = config.kid.clone();
    match config.alg {
        KeyAlgorithm::HS256 => {
            let source = SecretSource::pick(
                "secret",
                config.secret_file.as_ref(),
                config.secret_env.as_ref(),
            )
            .map_err(|e| ("secret_file".into(), e))?
            .ok_or_else(|| {
                (
                    "secret_file".into(),
                    "HS256 needs `secret_file` or `secret_env`".into(),
                )
            })?;
            let key = source_key("secret", &source);
            let secret = source.read().map_err(|e| (key.clone(), e))?;
            KeyPair::hs256(kid, secret.expose_secret().as_bytes()).map_err(|e| (key, e))
        }
        alg => {
            let source = SecretSource::pick(
                "private_key",
                config.private_key_file.as_ref(),
                config.private_key_env.as_ref(),
            )
            .map_err(|e| ("private_key_file".into(), e))?
            .ok_or_else(|| {
                (
                    "private_key_file".into(),
                    format!("{alg:?} needs `private_key_file` or `private_key_env`"),
                )
            })?;
            let key = source_key("private_key", &source);
            let pem = source.read_bytes().map_err(|e| (key.clone(), e))?;
            KeyPair::from_pem(algorithm(alg), kid, &pem).map_err(|e| (key, e))
        }
    }
}

fn source_key(stem: &str, source: &SecretSource) -> String {
    match source {
        SecretSource::File(_) => format!("{stem}_file"),
        SecretSource::Env(_) => format!("{stem}_env"),
    }
}

fn algorithm(alg: KeyAlgorithm) -> Algorithm {
    match alg {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::HS256 => Algorithm::HS256,
    }
}
