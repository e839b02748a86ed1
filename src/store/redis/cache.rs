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

use std::collections::HashMap;
use std::sync::Mutex;
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

#[derive(Default)]
struct State {
    /// Bumped by every announcement and every (re)subscription.
    changes: u64,
    trusted_until: Option<Instant>,
    /// Token ids Redis said were not revoked, with the family they were checked with.
    live_tokens: HashMap<String, Option<String>>,
    /// Families announced revoked, until their end.
    dead_families: HashMap<String, u64>,
    api_keys: HashMap<String, ApiKeyRecord>,
}

impl State {
    fn trusted(&self, now: Instant) -> bool {
        self.trusted_until.is_some_and(|until| now < until)
    }
}

#[derive(Default)]
pub struct Cache {
    state: Mutex<State>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // in a way that matters: every entry is individually true.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn token(&self, tenant: &str, jti: &str, family: Option<&str>) -> Known {
        let known = self.token_known(tenant, jti, family);
        let hit = !matches!(known, Known::Unknown(_));
        crate::meters::cache_lookup(crate::meters::Verdict::Token, hit);
        known
    }

    fn token_known(&self, tenant: &str, jti: &str, family: Option<&str>) -> Known {
        let state = self.lock();
        if let Some(family) = family {
            let until = state.dead_families.get(&key(tenant, family));
            if until.is_some_and(|until| *until >= unix_now()) {
                return Known::Revoked;
            }
        }
        let live = state.live_tokens.get(&key(tenant, jti));
        if state.trusted(Instant::now()) && live.is_some_and(|f| f.as_deref() == family) {
            return Known::Live;
        }
        Known::Unknown(Ticket(state.changes))
    }

    pub fn remember_live_token(
        &self,
        ticket: Ticket,
        tenant: &str,
        jti: &str,
        family: Option<&str>,
    ) {
        let mut state = self.lock();
        if state.changes != ticket.0 {
            return;
        }
        if state.live_tokens.len() >= CAPACITY {
            state.live_tokens.clear();
        }
        state
            .live_tokens
            .insert(key(tenant, jti), family.map(str::to_owned));
    }

    /// The record of a live API key, or the ticket to ask Redis with.
    pub fn api_key(&self, tenant: &str, hash: &str) -> Result<ApiKeyRecord, Ticket> {
        let state = self.lock();
        let known = match state.api_keys.get(&key(tenant, hash)) {
            Some(record) if state.trusted(Instant::now()) => Ok(record.clone()),
            _ => Err(Ticket(state.changes)),
        };
        drop(state);
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
        let mut state = self.lock();
        if state.changes != ticket.0 {
            return;
        }
        if state.api_keys.len() >= CAPACITY {
            state.api_keys.clear();
        }
        state.api_keys.insert(key(tenant, hash), record.clone());
    }

    /// Applies an announcement of another (or this) replica's write.
    pub fn apply(&self, event: Event) {
        let mut state = self.lock();
        state.changes += 1;
        match event {
            Event::Token { tenant, jti } => {
                state.live_tokens.remove(&key(&tenant, &jti));
            }
            Event::Family {
                tenant,
                family,
                until,
            } => {
                if state.dead_families.len() >= CAPACITY {
                    let now = unix_now();
                    state.dead_families.retain(|_, until| *until >= now);
                    if state.dead_families.len() >= CAPACITY {
                        // Forgetting a dead family is only safe if its
                        // tokens are forgotten as live too.
                        state.dead_families.clear();
                        state.live_tokens.clear();
                    }
                }
                let entry = state
                    .dead_families
                    .entry(key(&tenant, &family))
                    .or_default();
                *entry = (*entry).max(until);
            }
            Event::ApiKey { tenant, hash } => {
                state.api_keys.remove(&key(&tenant, &hash));
            }
        }
    }

    /// The subscription (re)started: what was missed meanwhile is unknown.
    pub fn resubscribed(&self) {
        let mut state = self.lock();
        state.changes += 1;
        state.trusted_until = None;
        state.live_tokens.clear();
        state.dead_families.clear();
        state.api_keys.clear();
    }

    /// The subscription broke: answer nothing from memory until it is back.
    pub fn distrust(&self) {
        let mut state = self.lock();
        state.changes += 1;
        state.trusted_until = None;
    }

    /// Our own heartbeat, sent at `sent`, came back through the subscription.
    pub fn heartbeat(&self, sent: Instant) {
        let mut state = self.lock();
        let until = sent + STALENESS;
        if state.trusted_until.is_none_or(|current| current < until) {
            state.trusted_until = Some(until);
        }
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
}
