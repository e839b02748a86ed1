//! A replica's memory of answers Redis gave, so that verifying a live token
//! or API key costs no round trip.
//!
//! Only answers that a later write could turn false are kept ("this token is
//! not revoked", "this API key belongs to alice"), and each such write is
//! announced on the events channel in the same atomic step as the write
//! itself. The subscriber drops what an announcement touches.
//!
//! Announcements travel over pub/sub, which forgets messages while a
//! subscriber is away. So the memory is trusted only while the subscription
//! is known to be live: every replica publishes a heartbeat on its own
//! channel every [`HEARTBEAT_EVERY`], and trusts its memory until
//! [`STALENESS`] after the sending time of the last heartbeat it received.
//! Redis delivers one connection's messages in the order it executed the
//! `PUBLISH`es, so a heartbeat received means every revocation written
//! before that heartbeat was sent has been received too. A revocation is
//! therefore honoured everywhere within [`STALENESS`] of being written, even
//! if the subscription silently stalls; when it breaks outright, the memory
//! is dropped at once and every check goes to Redis until it is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::store::{ApiKeyRecord, unix_now};

/// How long a "not revoked" answer may lag a revocation written elsewhere.
pub const STALENESS: Duration = Duration::from_secs(1);
/// How often a replica proves its subscription live.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// Entries kept per map; past it the map starts over (Redis stays the truth).
const CAPACITY: usize = 100_000;

const SEP: char = '\u{1f}';

/// What an announcement on the events channel says was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A token id was revoked.
    Token { tenant: String, jti: String },
    /// A refresh family (session) was revoked until `until`.
    Family {
        tenant: String,
        family: String,
        until: u64,
    },
    /// An API key (by hash) stopped working.
    ApiKey { tenant: String, hash: String },
}

impl Event {
    /// The message for `kind` (`t`, `f`, `k`) about `id` in `tenant`; a
    /// family's end is appended by whoever publishes it.
    pub fn message(kind: char, tenant: &str, id: &str) -> String {
        format!("{}{id}{SEP}", Self::prefix(kind, tenant))
    }

    /// The start of a message for `kind` in `tenant`, for a script to
    /// append the id it finds.
    pub fn prefix(kind: char, tenant: &str) -> String {
        format!("{kind}{SEP}{tenant}{SEP}")
    }

    pub fn parse(message: &str) -> Option<Self> {
        let mut parts = message.split(SEP);
        let (kind, tenant, id) = (parts.next()?, parts.next()?, parts.next()?);
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        match kind {
            "t" => Some(Self::Token { tenant, jti: id }),
            "k" => Some(Self::ApiKey { tenant, hash: id }),
            "f" => Some(Self::Family {
                tenant,
                family: id,
                until: parts.next()?.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// Where a lookup stands. A verdict read from Redis may be kept only if
/// nothing was announced while it was being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// One of the cache's maps, with a count of its entries (the map's own
/// count reads all of it).
struct Map<V: 'static> {
    entries: scc::HashIndex<String, V>,
    count: AtomicUsize,
}

impl<V: Clone + 'static> Map<V> {
    fn new() -> Self {
        Self {
            entries: scc::HashIndex::new(),
            count: AtomicUsize::new(0),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        self.entries.peek_with(key, |_, v| v.clone())
    }

    fn full(&self) -> bool {
        self.count.load(Ordering::Relaxed) >= CAPACITY
    }

    fn put(&self, key: String, value: V) {
        match self.entries.entry_sync(key) {
            scc::hash_index::Entry::Occupied(mut entry) => entry.update(value),
            scc::hash_index::Entry::Vacant(entry) => {
                entry.insert_entry(value);
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn remove(&self, key: &str) {
        if self.entries.remove_sync(key) {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn clear(&self) {
        self.entries.clear_sync();
        self.count.store(0, Ordering::Relaxed);
    }
}

/// Answers are read with no lock: the maps are lock-free for readers
/// ([`scc::HashIndex`]) and the rest is atomics. Writers (announcements,
/// answers kept after a miss, the subscription's ups and downs) take
/// `writing` one at a time, which keeps a ticket and the maps in step: a
/// writer that keeps an answer checks, under it, that nothing was announced
/// since its ticket was drawn. A reader draws its ticket before it looks,
/// so a ticket is never newer than what the reader saw.
pub struct Cache {
    writing: Mutex<()>,
    /// Bumped by every announcement and every (re)subscription.
    changes: AtomicU64,
    /// Nanoseconds after `epoch` until which memory may answer; 0: never.
    trusted_until: AtomicU64,
    epoch: Instant,
    /// Token ids Redis said were not revoked, with the family they were checked with.
    live_tokens: Map<Option<String>>,
    /// Families announced revoked, until their end.
    dead_families: Map<u64>,
    api_keys: Map<ApiKeyRecord>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            writing: Mutex::new(()),
            changes: AtomicU64::new(0),
            trusted_until: AtomicU64::new(0),
            epoch: Instant::now(),
            live_tokens: Map::new(),
            dead_families: Map::new(),
            api_keys: Map::new(),
        }
    }
}

/// Whether the cache can answer a token check by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Live,
    Revoked,
    /// Ask Redis, then [`Cache::remember_live_token`] with the ticket.
    Unknown(Ticket),
}

impl Cache {
    fn write(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock guards no data of its own: a panic while holding it
        // leaves every entry individually true.
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ticket(&self) -> Ticket {
        Ticket(self.changes.load(Ordering::SeqCst))
    }

    fn trusted(&self) -> bool {
        let until = self.trusted_until.load(Ordering::SeqCst);
        until != 0 && self.nanos(Instant::now()) < until
    }

    fn nanos(&self, at: Instant) -> u64 {
        // Saturates at 584 years of uptime.
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn token(&self, tenant: &str, jti: &str, family: Option<&str>) -> Known {
        let known = self.token_known(tenant, jti, family);
        let hit = !matches!(known, Known::Unknown(_));
        crate::meters::cache_lookup(crate::meters::Verdict::Token, hit);
        known
    }

    fn token_known(&self, tenant: &str, jti: &str, family: Option<&str>) -> Known {
        let ticket = self.ticket();
        if let Some(family) = family {
            let until = self.dead_families.get(&key(tenant, family));
            if until.is_some_and(|until| until >= unix_now()) {
                return Known::Revoked;
            }
        }
        let live = self.live_tokens.get(&key(tenant, jti));
        if self.trusted() && live.is_some_and(|f| f.as_deref() == family) {
            return Known::Live;
        }
        Known::Unknown(ticket)
    }

    pub fn remember_live_token(
        &self,
        ticket: Ticket,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) {
        let _writing = self.write();
        if self.ticket() != ticket {
            return;
        }
        if self.live_tokens.full() {
            self.live_tokens.clear();
        }
        self.live_tokens
            .put(key(tenant, jti), family.map(str::to_owned));
    }

    /// The record of a live API key, or the ticket to ask Redis with.
    pub fn api_key(&self, tenant: &str, hash: &str) -> Result<ApiKeyRecord, Ticket> {
        let ticket = self.ticket();
        let known = match self.api_keys.get(&key(tenant, hash)) {
            Some(record) if self.trusted() => Ok(record),
            _ => Err(ticket),
        };
        crate::meters::cache_lookup(crate::meters::Verdict::ApiKey, known.is_ok());
        known
    }

    pub fn remember_api_key(
        &self,
        ticket: Ticket,
        tenant: &str,
        hash: &str,
        record: &ApiKeyRecord,
    ) {
        let _writing = self.write();
        if self.ticket() != ticket {
            return;
        }
        if self.api_keys.full() {
            self.api_keys.clear();
        }
        self.api_keys.put(key(tenant, hash), record.clone());
    }

    /// Applies an announcement of another (or this) replica's write.
    pub fn apply(&self, event: Event) {
        let _writing = self.write();
        self.changes.fetch_add(1, Ordering::SeqCst);
        match event {
            Event::Token { tenant, jti } => {
                self.live_tokens.remove(&key(&tenant, &jti));
            }
            Event::Family {
                tenant,
                family,
                until,
            } => {
                let k = key(&tenant, &family);
                if self.dead_families.full() {
                    let now = unix_now();
                    self.dead_families
                        .entries
                        .retain_sync(|_, until| *until >= now);
                    let left = self.dead_families.entries.len();
                    self.dead_families.count.store(left, Ordering::Relaxed);
                    if self.dead_families.full() {
                        // Forgetting a dead family is only safe if its
                        // tokens are forgotten as live too, and first: a
                        // reader between the two must not find a token
                        // live and its family no longer dead.
                        self.live_tokens.clear();
                        self.dead_families.clear();
                    }
                }
                let until = self.dead_families.get(&k).map_or(until, |u| u.max(until));
                self.dead_families.put(k, until);
            }
            Event::ApiKey { tenant, hash } => {
                self.api_keys.remove(&key(&tenant, &hash));
            }
        }
    }

    /// The subscription (re)started: what was missed meanwhile is unknown.
    pub fn resubscribed(&self) {
        let _writing = self.write();
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.trusted_until.store(0, Ordering::SeqCst);
        self.live_tokens.clear();
        self.dead_families.clear();
        self.api_keys.clear();
    }

    /// The subscription broke: answer nothing from memory until it is back.
    pub fn distrust(&self) {
        let _writing = self.write();
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.trusted_until.store(0, Ordering::SeqCst);
    }

    /// Our own heartbeat, sent at `sent`, came back through the subscription.
    pub fn heartbeat(&self, sent: Instant) {
        let _writing = self.write();
        let until = self.nanos(sent + STALENESS).max(1);
        self.trusted_until.fetch_max(until, Ordering::SeqCst);
    }
}

fn key(tenant: &str, id: &str) -> String {
    format!("{tenant}{SEP}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Cache {
        let cache = Cache::default();
        cache.heartbeat(Instant::now());
        cache
    }

    #[test]
    fn events_round_trip() {
        let family = format!("{}1700000000", Event::message('f', "t", "fam"));
        assert_eq!(
            Event::parse(&family),
            Some(Event::Family {
                tenant: "t".into(),
                family: "fam".into(),
                until: 1_700_000_000
            })
        );
        assert_eq!(
            Event::parse(&Event::message('t', "t", "j")),
            Some(Event::Token {
                tenant: "t".into(),
                jti: "j".into()
            })
        );
        assert_eq!(Event::parse("x"), None);
    }

    #[test]
    fn a_revocation_announced_while_reading_is_not_overwritten() {
        let cache = trusted();
        let Known::Unknown(ticket) = cache.token("t", "j", Some("f")) else {
            panic!("nothing is known yet");
        };
        cache.apply(Event::Token {
            tenant: "t".into(),
            jti: "j".into(),
        });
        cache.remember_live_token(ticket, "t", "j", Some("f"));
        assert!(matches!(
            cache.token("t", "j", Some("f")),
            Known::Unknown(_)
        ));
    }

    #[test]
    fn live_answers_need_a_live_subscription() {
        let cache = trusted();
        let Known::Unknown(ticket) = cache.token("t", "j", None) else {
            panic!("nothing is known yet");
        };
        cache.remember_live_token(ticket, "t", "j", None);
        assert_eq!(cache.token("t", "j", None), Known::Live);
        cache.distrust();
        assert!(matches!(cache.token("t", "j", None), Known::Unknown(_)));
        // A heartbeat sent longer ago than the staleness bound proves nothing.
        cache.heartbeat(Instant::now() - STALENESS);
        assert!(matches!(cache.token("t", "j", None), Known::Unknown(_)));
    }

    #[test]
    fn revocations_drop_only_what_they_name() {
        let cache = trusted();
        for jti in ["j", "j2"] {
            let Known::Unknown(ticket) = cache.token("t", jti, Some("f")) else {
                panic!("nothing is known yet");
            };
            cache.remember_live_token(ticket, "t", jti, Some("f"));
        }
        cache.apply(Event::Token {
            tenant: "t".into(),
            jti: "j".into(),
        });
        assert!(matches!(
            cache.token("t", "j", Some("f")),
            Known::Unknown(_)
        ));
        assert_eq!(cache.token("t", "j2", Some("f")), Known::Live);
        cache.apply(Event::Family {
            tenant: "t".into(),
            family: "f".into(),
            until: unix_now() + 60,
        });
        assert_eq!(cache.token("t", "j2", Some("f")), Known::Revoked);
    }

    #[test]
    fn an_announcement_racing_a_remembered_answer_always_wins() {
        let cache = std::sync::Arc::new(trusted());
        for n in 0..2_000 {
            let jti = format!("j{n}");
            let Known::Unknown(ticket) = cache.token("t", &jti, None) else {
                panic!("nothing is known yet");
            };
            let announcer = {
                let (cache, jti) = (std::sync::Arc::clone(&cache), jti.clone());
                std::thread::spawn(move || {
                    cache.apply(Event::Token {
                        tenant: "t".into(),
                        jti,
                    })
                })
            };
            cache.remember_live_token(ticket, "t", &jti, None);
            announcer.join().unwrap();
            assert!(
                matches!(cache.token("t", &jti, None), Known::Unknown(_)),
                "round {n}: a token revoked after its ticket was drawn is not live"
            );
        }
    }
}
