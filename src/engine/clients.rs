//! OAuth clients of a tenant (`[[clients]]`): services that call polyauth
//! themselves, for introspection and revocation. Each is an id and the
//! SHA-256 of its secret. A secret is at least 32 random bytes, so a fast
//! hash is enough to store it (guessing the secret is guessing 256 bits);
//! it is compared in constant time.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Engine, EngineError, EngineResult, Tenant};

/// How a stored secret hash starts.
pub const SECRET_HASH_PREFIX: &str = "sha256:";
/// The shortest client secret `polyauth hash-secret` accepts.
pub const MIN_SECRET_BYTES: usize = 32;

/// The SHA-256 digest of a client secret, written `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// Reads `sha256:<64 lowercase hex>`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected =
            "must be `sha256:` and 64 lowercase hex digits (`polyauth hash-secret` prints it)";
        let hex = text
            .strip_prefix(SECRET_HASH_PREFIX)
            .ok_or_else(|| expected.to_owned())?;
        if hex.len() != 64 {
            return Err(expected.to_owned());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let (high, low) = (nibble(pair[0]), nibble(pair[1]));
            *byte = (high.ok_or(expected)? << 4) | low.ok_or(expected)?;
        }
        Ok(Self(digest))
    }

    /// Whether `secret` hashes to this, in time independent of where they differ.
    pub fn matches(&self, secret: &[u8]) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }
}

/// The value of a lowercase hex digit.
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_HASH_PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash([REDACTED])")
    }
}

/// A tenant's clients, by id.
pub struct Clients {
    by_id: HashMap<String, SecretHash>,
    /// Checked against when the id is unknown, so that both cost the same.
    dummy: SecretHash,
}

impl Clients {
    pub fn new(clients: impl IntoIterator<Item = (String, SecretHash)>) -> Self {
        Self {
            by_id: clients.into_iter().collect(),
            dummy: SecretHash::of(uuid::Uuid::new_v4().as_bytes()),
        }
    }

    /// Whether `secret` is the secret of client `id`.
    fn check(&self, id: &str, secret: &str) -> bool {
        match self.by_id.get(id) {
            Some(hash) => hash.matches(secret.as_bytes()),
            None => {
                let _ = self.dummy.matches(secret.as_bytes());
                false
            }
        }
    }
}

impl Engine {
    /// A client of the tenant, authenticated by its id and secret
    /// (`invalid_credentials` otherwise).
    #[tracing::instrument(skip_all, fields(tenant = %tenant.id))]
    pub fn authenticate_client(&self, tenant: &Tenant, id: &str, secret: &str) -> EngineResult<()> {
        match tenant.clients.check(id, secret) {
            true => Ok(()),
            false => Err(EngineError::InvalidCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_reads_back_what_it_writes_and_only_that() {
        let hash = SecretHash::of(b"s3cret");
        let text = hash.to_string();
        assert_eq!(text.len(), SECRET_HASH_PREFIX.len() + 64);
        assert_eq!(SecretHash::parse(&text).unwrap(), hash);
        assert!(hash.matches(b"s3cret"));
        assert!(!hash.matches(b"s3cret "));
        for bad in [
            "",
            "sha256:",
            &text.to_uppercase(),
            &text.replace("sha256:", "sha512:"),
            &text[..text.len() - 1],
            &format!("{text}0"),
            &format!("{}g", &text[..text.len() - 1]),
        ] {
            assert!(SecretHash::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format!("{hash:?}"), "SecretHash([REDACTED])");
    }

    #[test]
    fn a_client_is_known_by_its_id_and_secret() {
        let clients = Clients::new([("billing".to_owned(), SecretHash::of(b"right"))]);
        assert!(clients.check("billing", "right"));
        assert!(!clients.check("billing", "wrong"));
        assert!(!clients.check("other", "right"));
        assert!(!Clients::new([]).check("billing", "right"));
    }
}
