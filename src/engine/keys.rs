//! A tenant's signing keys: the first signs, every one verifies (rotation).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::secret::SecretSource;
use crate::config::tenant::{KeyAlgorithm, KeyConfig};
use crate::store::StoredSigningKey;

/// A key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub(crate) encoding: EncodingKey,
}

/// A key that verifies tokens carrying its `kid`.
pub struct VerifyingKey {
    pub alg: Algorithm,
    pub(crate) decoding: DecodingKey,
    /// The public JWK, for asymmetric keys.
    pub jwk: Option<serde_json::Value>,
}

/// One key, ready to sign and verify.
pub struct KeyPair {
    pub signing: SigningKey,
    pub verifying: VerifyingKey,
}

/// Keys of one tenant; verification looks up `kid` here and nowhere else.
pub struct KeySet {
    signing: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// The first pair signs; all verify. `pairs` must not be empty.
    pub fn new(pairs: Vec<KeyPair>) -> anyhow::Result<Self> {
        let mut pairs = pairs.into_iter();
        let first = pairs
            .next()
            .ok_or_else(|| anyhow::anyhow!("a key set needs at least one key"))?;
        let mut verifying = HashMap::new();
        verifying.insert(first.signing.kid.clone(), first.verifying);
        for pair in pairs {
            verifying.insert(pair.signing.kid, pair.verifying);
        }
        Ok(Self {
            signing: first.signing,
            verifying,
        })
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// Public keys as a JWK set (symmetric keys are never published).
    pub fn jwks(&self) -> serde_json::Value {
        let mut kids: Vec<&String> = self.verifying.keys().collect();
        kids.sort();
        let keys: Vec<serde_json::Value> = kids
            .into_iter()
            .filter_map(|kid| {
                let key = &self.verifying[kid];
                let mut jwk = key.jwk.clone()?;
                jwk["kid"] = kid.as_str().into();
                jwk["use"] = "sig".into();
                jwk["alg"] = format!("{:?}", key.alg).into();
                Some(jwk)
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// Loads a configured key; the error says what is wrong, never the key.
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
            let secret = source
                .read()
                .map_err(|e| (source_key("secret", &source), e))?;
            let bytes = secret.expose_secret().as_bytes();
            if bytes.len() < 32 {
                return Err((
                    source_key("secret", &source),
                    "an HS256 secret must be at least 32 bytes".into(),
                ));
            }
            Ok(KeyPair {
                signing: SigningKey {
                    kid,
                    alg: Algorithm::HS256,
                    encoding: EncodingKey::from_secret(bytes),
                },
                verifying: VerifyingKey {
                    alg: Algorithm::HS256,
                    decoding: DecodingKey::from_secret(bytes),
                    jwk: None,
                },
            })
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
            pair_from_pem(kid, alg, &pem).map_err(|e| (key, e))
        }
    }
}

fn source_key(stem: &str, source: &SecretSource) -> String {
    match source {
        SecretSource::File(_) => format!("{stem}_file"),
        SecretSource::Env(_) => format!("{stem}_env"),
    }
}

fn pair_from_pem(kid: String, alg: KeyAlgorithm, pem: &[u8]) -> Result<KeyPair, String> {
    match alg {
        KeyAlgorithm::EdDSA => {
            let text = std::str::from_utf8(pem).map_err(|_| "the PEM is not text".to_string())?;
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map_err(|e| format!("not a PKCS#8 Ed25519 private key ({e})"))?;
            ed25519_pair(kid, &key)
        }
        KeyAlgorithm::ES256 | KeyAlgorithm::RS256 => {
            let (alg, encoding) = if alg == KeyAlgorithm::ES256 {
                (Algorithm::ES256, EncodingKey::from_ec_pem(pem))
            } else {
                (Algorithm::RS256, EncodingKey::from_rsa_pem(pem))
            };
            let encoding =
                encoding.map_err(|e| format!("not a PEM private key for {alg:?} ({e})"))?;
            let jwk = Jwk::from_encoding_key(&encoding, alg)
                .map_err(|e| format!("cannot derive the public key ({e})"))?;
            let decoding =
                DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable public key ({e})"))?;
            let jwk = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
            Ok(KeyPair {
                signing: SigningKey { kid, alg, encoding },
                verifying: VerifyingKey {
                    alg,
                    decoding,
                    jwk: Some(jwk),
                },
            })
        }
        KeyAlgorithm::HS256 => Err("HS256 keys are secrets, not PEM files".into()),
    }
}

fn ed25519_pair(kid: String, key: &ed25519_dalek::SigningKey) -> Result<KeyPair, String> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| format!("cannot encode the key ({e})"))?;
    let public = key.verifying_key().to_bytes();
    Ok(KeyPair {
        signing: SigningKey {
            kid,
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
        },
        verifying: VerifyingKey {
            alg: Algorithm::EdDSA,
            decoding: DecodingKey::from_ed_der(&public),
            jwk: Some(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(public),
            })),
        },
    })
}

/// A fresh Ed25519 key for a tenant with no `[[keys]]`; its `kid` is derived
/// from the public key so it is stable wherever the key is loaded.
pub fn generate_ed25519() -> anyhow::Result<StoredSigningKey> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let digest = Sha256::digest(key.verifying_key().to_bytes());
    let der = key
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("cannot encode the generated key: {e}"))?;
    Ok(StoredSigningKey {
        kid: format!("gen-{}", URL_SAFE_NO_PAD.encode(&digest[..9])),
        alg: "EdDSA".into(),
        pkcs8_der: der.as_bytes().to_vec(),
    })
}

/// Rebuilds a key pair from what the store keeps.
pub fn from_stored(stored: &StoredSigningKey) -> anyhow::Result<KeyPair> {
    anyhow::ensure!(
        stored.alg == "EdDSA",
        "stored signing key has unsupported algorithm {}",
        stored.alg
    );
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&stored.pkcs8_der)
        .map_err(|e| anyhow::anyhow!("stored signing key is unreadable: {e}"))?;
    ed25519_pair(stored.kid.clone(), &key).map_err(anyhow::Error::msg)
}
