//! A tenant's `[[keys]]`: the key material they name is read from a file or
//! the environment and handed to the engine as bytes.
//!
//! Rotating configured keys without cutting sessions short: put the new key
//! first (it signs from the next start), keep the old one after it, and
//! give the old one a `retire_after` no earlier than the longest token it
//! signed can live (`remember_refresh_ttl` plus 30 s, counted from the
//! restart). Once it is past, the key neither verifies nor is listed in the
//! JWKS, with no restart; if the first key retires, the next one that has
//! not signs.

use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use secrecy::ExposeSecret;

use super::secret::SecretSource;
use super::tenant::{KeyAlgorithm, KeyConfig};
use super::timestamp::Timestamp;
use crate::engine::keys::KeyPair;

/// Loads a configured key; the error names the key at fault and says what
/// is wrong, never the key.
pub fn load_configured(config: &KeyConfig) -> Result<KeyPair, (String, String)> {
    let mut pair = load_material(config)?;
    pair.retire_at = config.retire_after.as_ref().map(|at| at.unix);
    Ok(pair)
}

/// When every key has retired by `now`: the index of the one that retired
/// last, and when. Then no key is left to sign: a startup error.
pub fn all_retired(keys: &[KeyConfig], now: u64) -> Option<(usize, &Timestamp)> {
    let mut last: Option<(usize, &Timestamp)> = None;
    for (i, key) in keys.iter().enumerate() {
        let at = key.retire_after.as_ref().filter(|at| at.unix <= now)?;
        if last.is_none_or(|(_, latest)| at.unix > latest.unix) {
            last = Some((i, at));
        }
    }
    last
}

fn load_material(config: &KeyConfig) -> Result<KeyPair, (String, String)> {
    let kid = config.kid.clone();
    match config.alg {
        KeyAlgorithm::HS256 => {
            let (source, key) = source(
                "secret",
                config.secret_file.as_ref(),
                config.secret_env.as_ref(),
                "HS256",
            )?;
            let secret = source.read().map_err(|e| (key.clone(), e))?;
            KeyPair::hs256(kid, secret.expose_secret().as_bytes()).map_err(|e| (key, e))
        }
        alg => {
            let (source, key) = source(
                "private_key",
                config.private_key_file.as_ref(),
                config.private_key_env.as_ref(),
                &format!("{alg:?}"),
            )?;
            let pem = source.read_bytes().map_err(|e| (key.clone(), e))?;
            KeyPair::from_pem(algorithm(alg), kid, &pem).map_err(|e| (key, e))
        }
    }
}

/// Where `<stem>_file` or `<stem>_env` says the material is, and which of
/// the two said it (the key an error then names).
fn source(
    stem: &str,
    file: Option<&PathBuf>,
    env: Option<&String>,
    needed_by: &str,
) -> Result<(SecretSource, String), (String, String)> {
    let file_key = format!("{stem}_file");
    let source = SecretSource::pick(stem, file, env)
        .map_err(|e| (file_key.clone(), e))?
        .ok_or_else(|| {
            (
                file_key.clone(),
                format!("{needed_by} needs `{stem}_file` or `{stem}_env`"),
            )
        })?;
    let key = match source {
        SecretSource::File(_) => file_key,
        SecretSource::Env(_) => format!("{stem}_env"),
    };
    Ok((source, key))
}

fn algorithm(alg: KeyAlgorithm) -> Algorithm {
    match alg {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::HS256 => Algorithm::HS256,
    }
}
