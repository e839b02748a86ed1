//! The password hash formats polyauth verifies: its own argon2id, and the
//! formats a vendor's user table may hold (argon2i/argon2d, bcrypt, PBKDF2
//! in three spellings, scrypt). Each is read here and checked against cost
//! bounds before anything runs, so a hash from an import can never make a
//! login take minutes or a gigabyte; the cryptography is the crates'.
//!
//! | scheme | spellings |
//! |---|---|
//! | `argon2id`, `argon2i`, `argon2d` | PHC: `$argon2id$v=19$m=…,t=…,p=…$salt$hash` |
//! | `bcrypt` | `$2a$`, `$2b$`, `$2y$` + cost + 53 characters |
//! | `pbkdf2_sha256`, `pbkdf2_sha512` | PHC `$pbkdf2-sha256$i=…,l=…$salt$hash`; passlib's `$pbkdf2-sha256$rounds$salt$hash`; Django's `pbkdf2_sha256$rounds$salt$hash` |
//! | `scrypt` | PHC `$scrypt$ln=…,r=…,p=…$salt$hash` |

use argon2::password_hash::PasswordHash;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::password;

/// Largest bcrypt cost accepted (2^16 rounds: about 5 s a login).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Largest scrypt `ln` accepted (N = 2^20).
pub const MAX_SCRYPT_LN: u8 = 20;
/// Largest scrypt memory (128 × r × N bytes) accepted: 1 GiB, as argon2's.
pub const MAX_SCRYPT_BYTES: u64 = 1 << 30;
/// Largest scrypt parallelism accepted.
pub const MAX_SCRYPT_P: u32 = 16;
/// Largest PBKDF2 iteration count accepted.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Longest salt and derived key read from a PBKDF2 or scrypt hash.
const MAX_BYTES: usize = 256;

/// How a stored password hash was made (the admin API's `hash_scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2id,
    Argon2i,
    Argon2d,
    Bcrypt,
    Pbkdf2Sha256,
    Pbkdf2Sha512,
    Scrypt,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "argon2id",
            Scheme::Argon2i => "argon2i",
            Scheme::Argon2d => "argon2d",
            Scheme::Bcrypt => "bcrypt",
            Scheme::Pbkdf2Sha256 => "pbkdf2_sha256",
            Scheme::Pbkdf2Sha512 => "pbkdf2_sha512",
            Scheme::Scrypt => "scrypt",
        }
    }
}

/// A PBKDF2 hash, read.
struct Pbkdf2 {
    sha512: bool,
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// A scrypt hash, read.
struct Scrypt {
    params: scrypt::Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// A stored hash, read and within its cost bounds.
enum Read {
    /// Read again by [`password::verify_in`], which computes in the
    /// thread's argon2 buffer.
    Argon2(Scheme),
    /// Read again by the crate, which takes the whole string.
    Bcrypt,
    Scrypt(Scrypt),
    Pbkdf2(Pbkdf2),
}

/// Reads `hash` and checks its costs, or says why it is refused (never
/// echoing the hash itself).
fn read(hash: &str) -> Result<Read, String> {
    if hash.starts_with("$argon2") {
        let parsed = PasswordHash::new(hash).map_err(|e| format!("malformed PHC string ({e})"))?;
        password::bounded_params(&parsed)?;
        return match parsed.algorithm.as_str() {
            "argon2id" => Ok(Read::Argon2(Scheme::Argon2id)),
            "argon2i" => Ok(Read::Argon2(Scheme::Argon2i)),
            "argon2d" => Ok(Read::Argon2(Scheme::Argon2d)),
            other => Err(format!("unknown argon2 variant `{other}`")),
        };
    }
    if hash.starts_with("$2") {
        check_bcrypt(hash)?;
        return Ok(Read::Bcrypt);
    }
    if hash.starts_with("$scrypt$") {
        return read_scrypt(hash).map(Read::Scrypt);
    }
    match read_pbkdf2(hash) {
        Some(pbkdf2) => pbkdf2.map(Read::Pbkdf2),
        None => Err("unknown password hash scheme (accepted: argon2id/i/d, bcrypt, PBKDF2-SHA256/-SHA512, scrypt)".into()),
    }
}

/// The scheme of `hash` once its costs are checked, or why it is refused
/// (never echoing the hash itself).
pub fn check(hash: &str) -> Result<Scheme, String> {
    Ok(match read(hash)? {
        Read::Argon2(scheme) => scheme,
        Read::Bcrypt => Scheme::Bcrypt,
        Read::Scrypt(_) => Scheme::Scrypt,
        Read::Pbkdf2(Pbkdf2 { sha512: true, .. }) => Scheme::Pbkdf2Sha512,
        Read::Pbkdf2(_) => Scheme::Pbkdf2Sha256,
    })
}

/// `true` when `password` matches `hash`; `None` for a hash that [`check`]
/// refuses. Argon2 computes in `memory` (see [`password::verify_in`]).
pub(super) fn verify(memory: &mut Vec<argon2::Block>, hash: &str, password: &[u8]) -> Option<bool> {
    let (expected, computed) = match read(hash).ok()? {
        Read::Argon2(_) => return password::verify_in(memory, hash, password),
        Read::Bcrypt => return bcrypt::verify(password, hash).ok(),
        Read::Scrypt(scrypt) => {
            let mut computed = vec![0u8; scrypt.hash.len()];
            scrypt::scrypt(password, &scrypt.salt, &scrypt.params, &mut computed).ok()?;
            (scrypt.hash, computed)
        }
        Read::Pbkdf2(pbkdf2) => {
            let derive = if pbkdf2.sha512 {
                pbkdf2::pbkdf2_hmac::<Sha512>
            } else {
                pbkdf2::pbkdf2_hmac::<Sha256>
            };
            let mut computed = vec![0u8; pbkdf2.hash.len()];
            derive(password, &pbkdf2.salt, pbkdf2.iterations, &mut computed);
            (pbkdf2.hash, computed)
        }
    };
    Some(bool::from(computed.ct_eq(&expected)))
}

/// Checks that `hash` is a bcrypt hash whose cost is within bounds.
fn check_bcrypt(hash: &str) -> Result<(), String> {
    let parts: Vec<&str> = hash.split('$').collect();
    let ["", version, cost, rest] = parts.as_slice() else {
        return Err("malformed bcrypt hash".into());
    };
    if !matches!(*version, "2a" | "2b" | "2y") {
        return Err(format!("unknown bcrypt version `{version}`"));
    }
    if rest.len() != 53
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        return Err("malformed bcrypt hash".into());
    }
    let cost: u32 = cost
        .parse()
        .ok()
        .filter(|_| cost.len() == 2)
        .ok_or("malformed bcrypt cost")?;
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside 4 to {MAX_BCRYPT_COST}"
        ));
    }
    Ok(())
}

/// Reads a scrypt PHC string, within bounds.
fn read_scrypt(hash: &str) -> Result<Scrypt, String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("malformed PHC string ({e})"))?;
    let param = |name: &str| -> Result<u64, String> {
        parsed
            .params
            .get_decimal(name)
            .map(u64::from)
            .ok_or_else(|| format!("the scrypt hash has no `{name}`"))
    };
    let (ln, r, p) = (param("ln")?, param("r")?, param("p")?);
    if ln == 0 || ln > u64::from(MAX_SCRYPT_LN) {
        return Err(format!("scrypt ln={ln} is outside 1 to {MAX_SCRYPT_LN}"));
    }
    if r == 0 || p == 0 || p > u64::from(MAX_SCRYPT_P) {
        return Err(format!("scrypt r={r}, p={p} are out of bounds"));
    }
    let bytes = 128u64.saturating_mul(r).saturating_mul(1 << ln);
    if bytes > MAX_SCRYPT_BYTES {
        return Err(format!(
            "scrypt memory 128 × r × 2^ln = {} MiB exceeds the 1 GiB bound",
            bytes >> 20
        ));
    }
    let salt = parsed
        .salt
        .ok_or("the scrypt hash has no salt")
        .and_then(|salt| decode_b64(salt.as_str()).ok_or("unreadable scrypt salt"))?;
    let hash = parsed
        .hash
        .map(|h| h.as_bytes().to_vec())
        .filter(|h| (10..=MAX_BYTES).contains(&h.len()))
        .ok_or("the scrypt hash has no hash, or one of an odd length")?;
    let params = scrypt::Params::new(ln as u8, r as u32, p as u32, hash.len())
        .map_err(|e| format!("bad scrypt parameters ({e})"))?;
    Ok(Scrypt { params, salt, hash })
}

/// Reads a PBKDF2 hash in any of its spellings: `None` when `hash` is not
/// PBKDF2 at all, else the hash or why it is refused.
fn read_pbkdf2(hash: &str) -> Option<Result<Pbkdf2, String>> {
    let parts: Vec<&str> = hash.split('$').collect();
    let read = match parts.as_slice() {
        // Django: the salt is used as it is written, the hash is base64.
        [
            algorithm @ ("pbkdf2_sha256" | "pbkdf2_sha512"),
            iterations,
            salt,
            hash,
        ] => {
            let sha512 = *algorithm == "pbkdf2_sha512";
            (|| -> Result<Pbkdf2, String> {
                Ok(Pbkdf2 {
                    sha512,
                    iterations: iterations_of(iterations)?,
                    salt: salt.as_bytes().to_vec(),
                    hash: STANDARD
                        .decode(hash)
                        .map_err(|_| "unreadable PBKDF2 hash")?,
                })
            })()
        }
        [
            "",
            algorithm @ ("pbkdf2-sha256" | "pbkdf2-sha512"),
            params,
            salt,
            hash,
        ] => {
            let sha512 = *algorithm == "pbkdf2-sha512";
            (|| -> Result<Pbkdf2, String> {
                // passlib writes the rounds alone and its own base64 ('.' for '+').
                let passlib = params.bytes().all(|b| b.is_ascii_digit());
                let decode = |text: &str| {
                    if passlib {
                        decode_b64(&text.replace('.', "+"))
                    } else {
                        decode_b64(text)
                    }
                };
                let iterations = if passlib {
                    iterations_of(params)?
                } else {
                    let i = params
                        .split(',')
                        .find_map(|kv| kv.strip_prefix("i="))
                        .ok_or("the PBKDF2 hash has no `i`")?;
                    iterations_of(i)?
                };
                Ok(Pbkdf2 {
                    sha512,
                    iterations,
                    salt: decode(salt).ok_or("unreadable PBKDF2 salt")?,
                    hash: decode(hash).ok_or("unreadable PBKDF2 hash")?,
                })
            })()
        }
        _ => return None,
    };
    Some(read.and_then(|pbkdf2| {
        if pbkdf2.salt.len() > MAX_BYTES || !(16..=MAX_BYTES).contains(&pbkdf2.hash.len()) {
            return Err("the PBKDF2 salt or hash has an odd length".into());
        }
        Ok(pbkdf2)
    }))
}

fn iterations_of(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .parse()
        .map_err(|_| "malformed PBKDF2 iteration count")?;
    if n == 0 || n > MAX_PBKDF2_ITERATIONS {
        return Err(format!(
            "PBKDF2 iteration count {n} is outside 1 to {MAX_PBKDF2_ITERATIONS}"
        ));
    }
    Ok(n)
}

/// Unpadded (or padded) standard base64, as PHC strings write it.
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
    (bytes.len() <= MAX_BYTES).then_some(bytes)
}
