//! Access tokens whose signature was already verified, remembered by the
//! thread that verified them, so that a client presenting the same token
//! again costs no signature check.
//!
//! The key is the whole token, compared byte for byte: only the very string
//! that verified can hit, so a forged or altered token never does. What is
//! remembered is the signature's verdict and nothing else: every claim is
//! checked again at each use (time, issuer, audience, tenant, type,
//! lifetime), and so are revocation and the holder. An entry is tied to
//! the key set it verified under ([`Arc::ptr_eq`]): a rotation or a reload
//! builds a new set, and nothing verified under the old one hits again. It
//! also ends when that key retires.
//!
//! One cache per thread: the HTTP workers each keep their own, share
//! nothing and take no lock. Each holds at most [`BYTES_PER_THREAD`] of
//! tokens and claims; the least recently used go first.

use std::cell::RefCell;
use std::sync::Arc;

use super::keys::KeySet;
use super::tokens::Claims;

/// What one thread's cache may hold, counting tokens and claims.
pub const BYTES_PER_THREAD: u64 = 2 * 1024 * 1024;
/// A token with its claims weighs about this much: the cache's first guess.
const TYPICAL_BYTES: u64 = 1024;

struct Entry {
    keys: Arc<KeySet>,
    claims: Arc<Claims>,
    /// When the key that verified it retires.
    key_retires_at: Option<u64>,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Box<str>, Entry> for Weight {
    fn weight(&self, token: &Box<str>, entry: &Entry) -> u64 {
        let claims = &entry.claims;
        let strings = [
            &claims.iss,
            &claims.aud,
            &claims.sub,
            &claims.jti,
            &claims.tid,
        ]
        .iter()
        .map(|s| s.len())
        .sum::<usize>()
            + claims.sid.as_ref().map_or(0, String::len)
            + claims.email.as_ref().map_or(0, String::len)
            + claims.cid.as_ref().map_or(0, String::len)
            + claims.roles.iter().map(|r| r.len() + 24).sum::<usize>();
        (token.len() + strings + std::mem::size_of::<Entry>()) as u64
    }
}

type Cache = quick_cache::unsync::Cache<Box<str>, Entry, Weight>;

thread_local! {
    static VERIFIED: RefCell<Cache> = RefCell::new(Cache::with_weighter(
        (BYTES_PER_THREAD / TYPICAL_BYTES) as usize,
        BYTES_PER_THREAD,
        Weight,
    ));
}

/// The claims of `token` if this thread verified its signature under
/// `keys` and that key has not retired by `now`.
pub fn recall(keys: &KeySet, token: &str, now: u64) -> Option<Arc<Claims>> {
    VERIFIED.with_borrow(|cache| {
        let entry = cache.get(token)?;
        let same_keys = std::ptr::eq(Arc::as_ptr(&entry.keys), keys);
        let key_live = entry.key_retires_at.is_none_or(|at| now < at);
        (same_keys && key_live).then(|| Arc::clone(&entry.claims))
    })
}

/// Remembers that `token`'s signature verified under `keys`.
pub fn remember(keys: Arc<KeySet>, token: &str, claims: &Arc<Claims>, key_retires_at: Option<u64>) {
    let entry = Entry {
        keys,
        claims: Arc::clone(claims),
        key_retires_at,
    };
    VERIFIED.with_borrow_mut(|cache| cache.insert(token.into(), entry));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::keys::KeyPair;
    use crate::engine::tokens::TokenType;

    fn keys() -> Arc<KeySet> {
        let pair = KeyPair::hs256("k".into(), &[7; 32]).unwrap();
        Arc::new(KeySet::new(vec![pair]).unwrap())
    }

    fn claims() -> Claims {
        Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "s".into(),
            iat: 0,
            nbf: 0,
            exp: 100,
            jti: "j".into(),
            typ: TokenType::Access,
            tid: "t".into(),
            sid: None,
            email: None,
            roles: vec![],
            cid: None,
            dir: false,
        }
    }

    #[test]
    fn only_the_same_string_under_the_same_key_set_hits() {
        let (ours, theirs) = (keys(), keys());
        remember(Arc::clone(&ours), "a.b.c", &Arc::new(claims()), None);
        assert!(recall(&ours, "a.b.c", 10).is_some());
        assert!(recall(&ours, "a.b.C", 10).is_none(), "one byte differs");
        assert!(recall(&ours, "a.b.c ", 10).is_none());
        assert!(recall(&theirs, "a.b.c", 10).is_none(), "another key set");
    }

    #[test]
    fn an_entry_ends_when_its_key_retires() {
        let keys = keys();
        remember(Arc::clone(&keys), "x.y.z", &Arc::new(claims()), Some(50));
        assert!(recall(&keys, "x.y.z", 49).is_some());
        assert!(recall(&keys, "x.y.z", 50).is_none());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let keys = keys();
        for n in 0..20_000 {
            remember(
                Arc::clone(&keys),
                &format!("{n:0>600}"),
                &Arc::new(claims()),
                None,
            );
        }
        VERIFIED.with_borrow(|cache| assert!(cache.weight() <= BYTES_PER_THREAD));
    }
}
