//! How many connections the public listener holds open: at most
//! `max_connections` in all and `max_connections_per_ip` from one client
//! address. A connection beyond either is closed as soon as it is accepted,
//! before anything is read from it; its slot is free again the moment it
//! closes. The count is exact across workers (one table, behind a lock taken
//! once per connection, not per request).
//!
//! The client is the TCP peer: a connection is counted before any header
//! could name another address, so behind a proxy the proxy is one client.
//! An IPv6 client is counted per /64, as for lockout: one host usually holds
//! a whole /64.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Refusals are logged at most this often, with how many there were.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The open connections of one listener, and its limits.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
    /// Refused since the last warning, and when that was.
    refused: u64,
    warned: Option<Instant>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_ip` are open from this client.
    PerClient,
}

/// A connection's slot, given back when dropped.
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    client: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            open: Mutex::default(),
        })
    }

    /// A slot for a connection from `peer`, if both limits allow one.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refusal> {
        let client = client_of(peer);
        let mut open = self.lock();
        let from_client = open.by_client.get(&client).copied().unwrap_or(0);
        let refusal = if open.total >= self.max_total {
            Some(Refusal::Total)
        } else if from_client >= self.max_per_client {
            Some(Refusal::PerClient)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            open.refused += 1;
            if open.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                let limit = match refusal {
                    Refusal::Total => "max_connections",
                    Refusal::PerClient => "max_connections_per_ip",
                };
                tracing::warn!(
                    %client,
                    limit,
                    refused = open.refused,
                    "connections refused: limit reached (this line repeats at most every 10 s)"
                );
                open.refused = 0;
                open.warned = Some(Instant::now());
            }
            return Err(refusal);
        }
        open.total += 1;
        *open.by_client.entry(client).or_insert(0) += 1;
        Ok(Permit {
            limits: Arc::clone(self),
            client,
        })
    }

    /// Connections open now, in all and from `peer`'s client address.
    pub fn open(&self, peer: IpAddr) -> (usize, usize) {
        let open = self.lock();
        let from_client = open.by_client.get(&client_of(peer)).copied();
        (open.total, from_client.unwrap_or(0))
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: each change is one step.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Entry::Occupied(mut entry) = open.by_client.entry(self.client) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

/// Descriptors the process needs besides public connections: the admin
/// listener's, the store's, the runtimes', the logs'.
const RESERVED_DESCRIPTORS: libc::rlim_t = 128;

/// Raises the process's soft open-file limit so that `max_connections`
/// can be open at once (a listener out of descriptors stops accepting
/// anyone, which is what the limits are there to prevent); warns when the
/// hard limit does not allow it. The soft limit is often 1024.
pub fn make_room_for(max_connections: usize) {
    let needed = (max_connections as libc::rlim_t).saturating_add(RESERVED_DESCRIPTORS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is handed, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    let soft = limit.rlim_cur;
    if soft >= needed {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads only the struct it is handed.
    let now = match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } {
        0 => raised.rlim_cur,
        _ => soft,
    };
    if now >= needed {
        tracing::info!(
            from = soft,
            to = now,
            "raised the open-file limit for max_connections"
        );
    } else {
        tracing::warn!(
            limit = now,
            max_connections,
            "the open-file limit is below max_connections + {RESERVED_DESCRIPTORS}: past about \
             {} connections, accepting fails for everyone until some close; raise the hard \
             limit (`ulimit -Hn`, systemd `LimitNOFILE=`) or lower max_connections",
            now.saturating_sub(RESERVED_DESCRIPTORS)
        );
    }
}

/// The address a connection counts against: IPv4 as is (an IPv4-mapped
/// IPv6 peer too), IPv6 by its /64.
fn client_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_share_and_no_more() {
        let limits = ConnectionLimits::new(10, 2);
        let first = limits.admit(ip("192.0.2.1")).unwrap();
        let _second = limits.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            limits.admit(ip("192.0.2.1")).err(),
            Some(Refusal::PerClient)
        );
        // Another client is not held back.
        let _other = limits.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(limits.open(ip("192.0.2.1")), (3, 2));
        // A closed connection frees its slot.
        drop(first);
        let _again = limits.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.open(ip("192.0.2.1")), (3, 2));
    }

    #[test]
    fn the_total_holds_across_clients() {
        let limits = ConnectionLimits::new(2, 5);
        let _a = limits.admit(ip("192.0.2.1")).unwrap();
        let b = limits.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(limits.admit(ip("192.0.2.3")).err(), Some(Refusal::Total));
        drop(b);
        assert!(limits.admit(ip("192.0.2.3")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = ConnectionLimits::new(10, 1);
        let _a = limits.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(limits.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(limits.admit(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = limits.admit(ip("192.0.2.7")).unwrap();
        assert!(limits.admit(ip("::ffff:192.0.2.7")).is_err());
    }

    #[test]
    fn the_open_file_limit_is_raised_as_far_as_allowed() {
        make_room_for(1000);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `make_room_for`.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let wanted = (1000 + RESERVED_DESCRIPTORS).min(limit.rlim_max);
        assert!(limit.rlim_cur >= wanted, "{}", limit.rlim_cur);
    }

    #[test]
    fn no_entry_outlives_its_connections() {
        let limits = ConnectionLimits::new(10, 10);
        let permits: Vec<_> = (1..=5)
            .map(|i| limits.admit(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        drop(permits);
        let open = limits.lock();
        assert_eq!((open.total, open.by_client.len()), (0, 0));
    }
}
