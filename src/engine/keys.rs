//! A tenant's signing keys: the first signs, every one verifies (rotation).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

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

impl KeyPair {
    /// An HS256 key from its shared secret, which must be at least 32 bytes.
    pub fn hs256(kid: String, secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("an HS256 secret must be at least 32 bytes".into());
        }
        Ok(Self {
            signing: SigningKey {
                kid,
                alg: Algorithm::HS256,
                encoding: EncodingKey::from_secret(secret),
            },
            verifying: VerifyingKey {
                alg: Algorithm::HS256,
                decoding: DecodingKey::from_secret(secret),
                jwk: None,
            },
        })
    }

    /// A key from a PEM private key: PKCS#8 Ed25519 (`EdDSA`), `ES256` or
    /// `RS256`. The error says what is wrong, never the key.
    pub fn from_pem(alg: Algorithm, kid: String, pem: &[u8]) -> Result<Self, String> {
        match alg {
            Algorithm::EdDSA => {
                let text =
                    std::str::from_utf8(pem).map_err(|_| "the PEM is not text".to_string())?;
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                    .map_err(|e| format!("not a PKCS#8 Ed25519 private key ({e})"))?;
                ed25519_pair(kid, &key)
            }
            Algorithm::ES256 | Algorithm::RS256 => {
                let encoding = if alg == Algorithm::ES256 {
                    EncodingKey::from_ec_pem(pem)
                } else {
                    EncodingKey::from_rsa_pem(pem)
                };
                let encoding =
                    encoding.map_err(|e| format!("not a PEM private key for {alg:?} ({e})"))?;
                let jwk = Jwk::from_encoding_key(&encoding, alg)
                    .map_err(|e| format!("cannot derive the public key ({e})"))?;
                if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
                    let bits = modulus_bits(&rsa.n)?;
                    if bits < MIN_RSA_BITS {
                        return Err(format!(
                            "an RSA key must have at least {MIN_RSA_BITS} bits; this one has {bits}"
                        ));
                    }
                }
                let decoding = DecodingKey::from_jwk(&jwk)
                    .map_err(|e| format!("unusable public key ({e})"))?;
                let jwk = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
                Ok(Self {
                    signing: SigningKey { kid, alg, encoding },
                    verifying: VerifyingKey {
                        alg,
                        decoding,
                        jwk: Some(jwk),
                    },
                })
            }
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                Err(format!("{alg:?} keys are secrets, not PEM files"))
            }
            other => Err(format!("{other:?} keys are not supported")),
        }
    }
}

/// RSA keys shorter than this are refused (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

/// The size in bits of an RSA modulus given as a JWK's base64url `n`.
fn modulus_bits(n: &str) -> Result<usize, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(n)
        .map_err(|_| "unreadable RSA modulus".to_string())?;
    let mut significant = bytes.iter().skip_while(|b| **b == 0);
    Ok(match significant.next() {
        Some(first) => (significant.count() + 1) * 8 - first.leading_zeros() as usize,
        None => 0,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_counts_from_the_first_set_bit() {
        assert_eq!(
            modulus_bits(&URL_SAFE_NO_PAD.encode([0x00, 0x80, 0, 0])).unwrap(),
            24
        );
        assert_eq!(
            modulus_bits(&URL_SAFE_NO_PAD.encode([0x01, 0xff])).unwrap(),
            9
        );
        assert_eq!(
            modulus_bits(&URL_SAFE_NO_PAD.encode([0xc0; 256])).unwrap(),
            2048
        );
        assert_eq!(
            modulus_bits(&URL_SAFE_NO_PAD.encode([0x7f; 256])).unwrap(),
            2047
        );
        assert_eq!(modulus_bits("").unwrap(), 0);
    }
}
