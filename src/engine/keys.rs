//! A tenant's signing keys, configured (`[[keys]]`, each may retire at a
//! date) or generated into the store (rotated by `polyauth keys rotate`):
//! the first key not retired signs, every key not retired verifies.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use super::tenant::Lifetimes;
use crate::store::{Store, StoredSigningKey, unix_now};

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
    /// From this instant (unix seconds) on, the key neither signs nor
    /// verifies and is not published.
    pub retire_at: Option<u64>,
}

/// Keys of one tenant; verification looks up `kid` here and nowhere else.
///
/// Which key signs is decided at each issuance, and which verify at each
/// verification, so that a key retires at its time with no restart: the
/// first key not retired signs (the next one takes over when the first
/// retires); every key not retired verifies and is published. When every
/// key has retired nothing can sign, and issuing fails (logins answer an
/// internal error) until a key is added; startup refuses such a set.
pub struct KeySet {
    /// In the order they are preferred for signing.
    keys: Vec<KeyPair>,
}

impl KeySet {
    /// The keys in the order they sign; `pairs` must not be empty.
    pub fn new(pairs: Vec<KeyPair>) -> anyhow::Result<Self> {
        anyhow::ensure!(!pairs.is_empty(), "a key set needs at least one key");
        Ok(Self { keys: pairs })
    }

    /// The key that signs at `now`, unless every key has retired.
    pub fn signing(&self, now: u64) -> Option<&SigningKey> {
        self.live(now).next().map(|pair| &pair.signing)
    }

    /// The key named `kid`, if it still verifies at `now`, and when it
    /// retires.
    pub fn verifying(&self, kid: &str, now: u64) -> Option<(&VerifyingKey, Option<u64>)> {
        self.live(now)
            .find(|pair| pair.signing.kid == kid)
            .map(|pair| (&pair.verifying, pair.retire_at))
    }

    /// A tenant's generated keys as the store keeps them, newest first:
    /// the newest signs; each older one verifies until `grace` seconds
    /// after its successor was made (see [`rotation_grace`]), then retires.
    pub fn generated(stored: &[StoredSigningKey], grace: u64) -> anyhow::Result<Self> {
        let mut pairs = Vec::with_capacity(stored.len());
        let mut successor: Option<&StoredSigningKey> = None;
        for key in stored {
            let mut pair = from_stored(key)?;
            pair.retire_at = successor.map(|newer| newer.created_at.saturating_add(grace));
            pairs.push(pair);
            successor = Some(key);
        }
        Self::new(pairs)
    }

    /// Every key's id and when it retires, in signing order.
    pub fn retirements(&self) -> impl Iterator<Item = (&str, Option<u64>)> {
        self.keys
            .iter()
            .map(|pair| (pair.signing.kid.as_str(), pair.retire_at))
    }

    fn live(&self, now: u64) -> impl Iterator<Item = &KeyPair> {
        self.keys.iter().filter(move |pair| !pair.retired(now))
    }

    /// The public keys that verify at `now`, as a JWK set, in signing
    /// order. Symmetric keys are never published.
    pub fn jwks(&self, now: u64) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .live(now)
            .filter_map(|pair| {
                let key = &pair.verifying;
                let mut jwk = key.jwk.clone()?;
                jwk["kid"] = pair.signing.kid.as_str().into();
                jwk["use"] = "sig".into();
                jwk["alg"] = format!("{:?}", key.alg).into();
                Some(jwk)
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

impl KeyPair {
    /// Whether the key has retired by `now`.
    pub fn retired(&self, now: u64) -> bool {
        self.retire_at.is_some_and(|at| now >= at)
    }

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
            retire_at: None,
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
                    retire_at: None,
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
        retire_at: None,
    })
}

/// How long a generated key keeps verifying once a rotation replaced it:
/// the longest a token it signed may live (replicas still signing with it
/// for the second they take to follow are within the skew), plus the skew
/// verification tolerates. Past it the key could verify nothing and is
/// dropped (from the JWKS at once, from the store at the next rotation).
pub fn rotation_grace(lifetimes: &Lifetimes) -> u64 {
    let longest = lifetimes
        .access
        .max(lifetimes.refresh)
        .max(lifetimes.remember_refresh);
    longest.as_secs().saturating_add(super::tokens::SKEW_SECS)
}

/// What a rotation of generated keys did.
#[derive(Debug)]
pub struct Rotation {
    /// The new key, which signs from now on.
    pub signing: String,
    /// The older keys that still verify, with when each stops (unix
    /// seconds), newest first.
    pub verifying: Vec<(String, u64)>,
}

/// Makes a fresh generated key the tenant's signing key; the keys it
/// replaces verify for [`rotation_grace`] more, those past it are
/// forgotten. Every process on the store follows
/// ([`crate::store::Secrets::signing_keys_changes`]).
pub async fn rotate(
    store: &dyn Store,
    tenant: &str,
    lifetimes: &Lifetimes,
) -> anyhow::Result<Rotation> {
    let grace = rotation_grace(lifetimes);
    let key = generate_ed25519()?;
    let now = key.created_at;
    let keys = store
        .signing_key_add(tenant, key, now.saturating_sub(grace))
        .await?;
    let set = KeySet::generated(&keys, grace)?;
    let mut retirements = set.retirements();
    let signing = retirements
        .next()
        .map(|(kid, _)| kid.to_owned())
        .unwrap_or_default();
    let verifying = retirements
        .filter_map(|(kid, at)| Some((kid.to_owned(), at?)))
        .filter(|(_, at)| *at > now)
        .collect();
    Ok(Rotation { signing, verifying })
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
        created_at: unix_now(),
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

    fn pair(kid: &str, retire_at: Option<u64>) -> KeyPair {
        let stored = generate_ed25519().unwrap();
        let mut pair = from_stored(&StoredSigningKey {
            kid: kid.into(),
            ..stored
        })
        .unwrap();
        pair.retire_at = retire_at;
        pair
    }

    fn hs256(kid: &str) -> KeyPair {
        KeyPair::hs256(kid.into(), &[7; 32]).unwrap()
    }

    fn published(set: &KeySet, now: u64) -> Vec<String> {
        set.jwks(now)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_first_key_not_retired_signs_and_every_key_not_retired_verifies() {
        let set =
            KeySet::new(vec![pair("a", Some(100)), hs256("h"), pair("b", Some(200))]).unwrap();
        let signer = |now| set.signing(now).map(|key| key.kid.clone());
        assert_eq!(signer(99).as_deref(), Some("a"));
        // Retired from its instant on: the next key takes over.
        assert_eq!(signer(100).as_deref(), Some("h"));
        assert!(set.verifying("a", 99).is_some());
        assert!(set.verifying("a", 100).is_none());
        assert!(set.verifying("b", 199).is_some());
        assert!(set.verifying("b", 200).is_none());
        assert!(set.verifying("nobody", 0).is_none());
        // Symmetric keys verify but are never published.
        assert!(set.verifying("h", 1_000).is_some());
        assert_eq!(published(&set, 99), ["a", "b"]);
        assert_eq!(published(&set, 150), ["b"]);
        assert!(published(&set, 200).is_empty());
    }

    #[test]
    fn when_every_key_has_retired_nothing_signs() {
        let set = KeySet::new(vec![pair("a", Some(10)), pair("b", Some(20))]).unwrap();
        assert_eq!(set.signing(15).map(|key| key.kid.as_str()), Some("b"));
        assert!(set.signing(20).is_none());
        assert!(published(&set, 20).is_empty());
        assert!(KeySet::new(Vec::new()).is_err());
    }

    #[test]
    fn an_older_generated_key_verifies_until_its_successor_is_older_than_the_grace() {
        let stored = |created_at| StoredSigningKey {
            created_at,
            ..generate_ed25519().unwrap()
        };
        let (newest, middle, oldest) = (stored(1_000), stored(500), stored(0));
        let set =
            KeySet::generated(&[newest.clone(), middle.clone(), oldest.clone()], 100).unwrap();
        assert_eq!(set.signing(u64::MAX).unwrap().kid, newest.kid);
        assert!(set.verifying(&oldest.kid, 599).is_some());
        assert!(set.verifying(&oldest.kid, 600).is_none());
        assert!(set.verifying(&middle.kid, 1_099).is_some());
        assert!(set.verifying(&middle.kid, 1_100).is_none());
        assert_eq!(
            published(&set, 700),
            [newest.kid.clone(), middle.kid.clone()]
        );
        assert_eq!(published(&set, 1_100), [newest.kid]);
    }

    #[test]
    fn the_grace_is_the_longest_lifetime_and_the_skew() {
        let lifetimes = |access, refresh, remember| Lifetimes {
            access: std::time::Duration::from_secs(access),
            refresh: std::time::Duration::from_secs(refresh),
            remember_refresh: std::time::Duration::from_secs(remember),
        };
        assert_eq!(rotation_grace(&lifetimes(60, 3_600, 86_400)), 86_430);
        assert_eq!(rotation_grace(&lifetimes(60, 7_200, 3_600)), 7_230);
        assert_eq!(rotation_grace(&lifetimes(900, 60, 60)), 930);
    }

    #[test]
    fn published_keys_hold_public_members_only() {
        let set = KeySet::new(vec![pair("a", None)]).unwrap();
        let jwks = set.jwks(0);
        let key = jwks["keys"][0].as_object().unwrap();
        let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x"]);
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
    }

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
