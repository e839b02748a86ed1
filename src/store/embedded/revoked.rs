//! The store's live revocations, in memory, so that verifying a token that
//! is not revoked reads nothing from disk and waits for no other thread.
//!
//! One process has the file (see [`super::StoreInUse`]), so this process's
//! own writes are every write there is: the view is filled from the file at
//! open, and each revocation enters it once its transaction has committed.
//! It holds a 64-bit digest of each revoked token or family with its end,
//! not the ids: 16 bytes an entry instead of a string each. A digest that
//! is absent proves the token was never revoked; a digest that is present
//! is confirmed by reading the file, so two ids sharing a digest can cost a
//! read, never a wrong answer.
//!
//! Reads are lock-free ([`scc::HashIndex`]): workers verifying tokens never
//! wait for each other or for a writer.

use std::hash::{BuildHasher, Hasher};

use redb::{ReadTransaction, ReadableTable};

use super::sessions::FamilyRecord;
use super::{DbError, FAMILIES, REVOKED, decode};

/// [`SEP`] as the text it is in a store key.
const SEP_STR: &str = "\u{1f}";

/// What a digest stands for: a token id or a refresh family (session).
#[derive(Debug, Clone, Copy)]
pub(super) enum Revoked {
    Token,
    Family,
}

pub(super) struct View {
    /// Digest of (kind, store key) → unix second until which it is revoked.
    ends: scc::HashIndex<u64, u64>,
    /// Keyed at random per process: digests cannot be aimed at from outside.
    digest: std::hash::RandomState,
}

impl View {
    /// The live revocations kept in the file at `now`.
    pub(super) fn load(txn: &ReadTransaction, now: u64) -> Result<Self, DbError> {
        let view = Self {
            ends: scc::HashIndex::new(),
            digest: std::hash::RandomState::new(),
        };
        for entry in txn.open_table(REVOKED)?.iter()? {
            let (key, end) = entry?;
            view.add(Revoked::Token, key.value(), end.value(), now);
        }
        for entry in txn.open_table(FAMILIES)?.iter()? {
            let (key, record) = entry?;
            // An unreadable record fails closed when it is read: keep it as
            // "maybe revoked", so that it is read.
            let end = decode::<FamilyRecord>(record.value())
                .map_or(Some(u64::MAX), |r| r.revoked.then_some(r.expires_at));
            if let Some(end) = end {
                view.add(Revoked::Family, key.value(), end, now);
            }
        }
        Ok(view)
    }

    /// The digest of the store key made of `parts` one after the other:
    /// fed to the hasher piece by piece, so a key need not be built to be
    /// looked up (`["t", SEP, "jti"]` and `["t\u{1f}jti"]` are one digest).
    fn digest_of(&self, kind: Revoked, parts: &[&str]) -> u64 {
        let mut hasher = self.digest.build_hasher();
        hasher.write_u8(kind as u8);
        for part in parts {
            hasher.write(part.as_bytes());
        }
        hasher.finish()
    }

    /// Records that `key` is revoked until `end`; a later end wins.
    pub(super) fn add(&self, kind: Revoked, key: &str, end: u64, now: u64) {
        if end < now {
            return;
        }
        match self.ends.entry_sync(self.digest_of(kind, &[key])) {
            scc::hash_index::Entry::Occupied(mut entry) => {
                if *entry.get() < end {
                    entry.update(end);
                }
            }
            scc::hash_index::Entry::Vacant(entry) => {
                entry.insert_entry(end);
            }
        }
    }

    /// `false` proves the id `id` of `tenant` is not revoked at `now`;
    /// `true` means it may be, and the file says.
    pub(super) fn maybe(&self, kind: Revoked, tenant: &str, id: &str, now: u64) -> bool {
        let digest = self.digest_of(kind, &[tenant, SEP_STR, id]);
        self.ends
            .peek_with(&digest, |_, end| *end >= now)
            .unwrap_or(false)
    }

    /// Forgets what ended before `now` (the sweeper's round).
    pub(super) fn forget_ended(&self, now: u64) {
        self.ends.retain_sync(|_, end| *end >= now);
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> View {
        View {
            ends: scc::HashIndex::new(),
            digest: std::hash::RandomState::new(),
        }
    }

    #[test]
    fn the_separator_is_the_store_keys_own() {
        assert_eq!(SEP_STR, super::super::SEP.to_string());
    }

    #[test]
    fn only_what_was_added_may_be_revoked_and_only_until_its_end() {
        let view = empty();
        view.add(Revoked::Token, "t\u{1f}a", 100, 50);
        assert!(view.maybe(Revoked::Token, "t", "a", 100));
        assert!(!view.maybe(Revoked::Token, "t", "a", 101));
        assert!(!view.maybe(Revoked::Family, "t", "a", 60), "kinds differ");
        assert!(!view.maybe(Revoked::Token, "u", "a", 60));
        assert!(!view.maybe(Revoked::Token, "t\u{1f}", "a", 60));
    }

    #[test]
    fn a_later_end_wins_and_ended_entries_are_forgotten() {
        let view = empty();
        view.add(Revoked::Family, "t\u{1f}f", 100, 0);
        view.add(Revoked::Family, "t\u{1f}f", 200, 0);
        view.add(Revoked::Family, "t\u{1f}f", 150, 0);
        assert!(view.maybe(Revoked::Family, "t", "f", 200));
        view.add(Revoked::Token, "old", 10, 0);
        view.add(Revoked::Token, "past", 5, 20);
        assert_eq!(view.len(), 2, "an end already past is not kept");
        view.forget_ended(50);
        assert_eq!(view.len(), 1);
    }
}
