//! Prometheus metrics, served as text by the admin listener's `/metrics`.
//!
//! One recorder for the process (the `metrics` facade's global), installed
//! once by [`install`]; a second call, or a second gateway in the same
//! process, shares it. Recording goes through the facade's handles, which
//! are atomics shared by every thread. What every request records (its
//! count, and a verify's time) is first kept by the recording thread in its
//! own [`Pending`] and handed to those handles in batches: two workers
//! incrementing one atomic per request made its cache line travel between
//! cores on every request (metrics cost verify 4 % of its CPU time). A
//! scrape hands every thread's batch over first, so `/metrics` is exact.
//!
//! Label values come from configuration (tenant ids) or from fixed sets
//! (route tags, status classes, outcomes, store operations): never a user,
//! a token or an address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const BUILD_INFO: &str = "polyauth_build_info";
pub const HTTP_REQUESTS: &str = "polyauth_http_requests_total";
pub const VERIFY_DURATION: &str = "polyauth_verify_duration_seconds";
pub const LOGIN_DURATION: &str = "polyauth_login_duration_seconds";
pub const LOCKOUTS: &str = "polyauth_lockouts_total";
pub const ARGON2_QUEUE_DEPTH: &str = "polyauth_argon2_queue_depth";
pub const ARGON2_WAIT: &str = "polyauth_argon2_wait_seconds";
pub const ARGON2_RUN: &str = "polyauth_argon2_run_seconds";
pub const STORE_DURATION: &str = "polyauth_store_operation_duration_seconds";
pub const STORE_ERRORS: &str = "polyauth_store_errors_total";
pub const CACHE_LOOKUPS: &str = "polyauth_verdict_cache_lookups_total";
pub const LOG_LINES_DROPPED: &str = "polyauth_log_lines_dropped_total";
pub const CONFIG_RELOADS: &str = "polyauth_config_reloads_total";

/// Upper bounds of the latency buckets, in seconds: 50 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// How often recorded histogram samples are folded in when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, once; later calls return the same
/// handle. Call it before building tenants, whose handles it registers.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("polyauth-metrics".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = started {
            tracing::warn!(%error, "no metrics upkeep thread: samples fold in at each scrape");
        }
        handle
    })
}

/// The exposition text, or `None` before [`install`].
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?;
    hand_over_all();
    metrics::counter!(LOG_LINES_DROPPED).absolute(crate::telemetry::dropped_lines() as u64);
    Some(handle.render())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(BUILD_INFO, "Always 1; the version serving.");
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by tenant, route tag and status class."
    );
    describe_histogram!(
        VERIFY_DURATION,
        metrics::Unit::Seconds,
        "Time to verify a token or API key, by tenant."
    );
    describe_histogram!(
        LOGIN_DURATION,
        metrics::Unit::Seconds,
        "Time to answer a login, by tenant and outcome."
    );
    describe_counter!(LOCKOUTS, "Logins refused because of a lockout, by tenant.");
    describe_gauge!(
        ARGON2_QUEUE_DEPTH,
        "Logins waiting for an argon2 hashing slot."
    );
    describe_histogram!(
        ARGON2_WAIT,
        metrics::Unit::Seconds,
        "Time a login waited for an argon2 hashing slot."
    );
    describe_histogram!(
        ARGON2_RUN,
        metrics::Unit::Seconds,
        "Time one argon2 verification ran."
    );
    describe_histogram!(
        STORE_DURATION,
        metrics::Unit::Seconds,
        "Time of one store call, by backend and operation."
    );
    describe_counter!(
        STORE_ERRORS,
        "Store calls that failed or timed out, by backend and operation."
    );
    describe_counter!(
        LOG_LINES_DROPPED,
        "Log lines dropped because stdout did not keep up (workers never wait for it)."
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Reloads of the tenant and dialect files, by result (success, failure)."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Redis verdict cache lookups, by kind (token, api_key) and result (hit, miss)."
    );
}

/// A tenant's handles, registered once when it is first built; a reload
/// that builds it again keeps them (and its slot).
#[derive(Clone)]
pub struct TenantMeters {
    /// The tenant id as a label value (shared, not copied, per use).
    pub tenant: SharedString,
    /// Where this tenant's verify times wait in each thread's [`Pending`].
    slot: usize,
    verify: Histogram,
    pub lockouts: Counter,
}

impl TenantMeters {
    /// The tenant's handles: made once per tenant id (with the recorder in
    /// the state it is now), then the same for every build of it, so that
    /// reloads, and a tenant removed and added again, take no new slot.
    pub fn of(tenant_id: &str) -> Self {
        type Made = HashMap<(String, bool), TenantMeters>;
        static MADE: OnceLock<Mutex<Made>> = OnceLock::new();
        let installed = HANDLE.get().is_some();
        let mut made = MADE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        made.entry((tenant_id.to_owned(), installed))
            .or_insert_with(|| Self::new(tenant_id))
            .clone()
    }

    fn new(tenant_id: &str) -> Self {
        static SLOTS: AtomicUsize = AtomicUsize::new(0);
        let tenant = SharedString::from_shared(std::sync::Arc::<str>::from(tenant_id));
        Self {
            slot: SLOTS.fetch_add(1, Ordering::Relaxed),
            verify: metrics::histogram!(VERIFY_DURATION, "tenant" => tenant.clone()),
            lockouts: metrics::counter!(LOCKOUTS, "tenant" => tenant.clone()),
            tenant,
        }
    }

    /// Records one verify's time, in this thread's batch.
    pub fn verify(&self, took: Duration) {
        with_pending(|pending| {
            if pending.verify.len() <= self.slot {
                pending.verify.resize_with(self.slot + 1, || None);
            }
            let (_, samples) =
                pending.verify[self.slot].get_or_insert_with(|| (self.verify.clone(), Vec::new()));
            samples.push(took.as_secs_f64());
            pending.samples += 1;
        });
    }

    /// Records one login's time and outcome (`lockout` also counts it).
    pub fn login(&self, outcome: &'static str, took: Duration) {
        metrics::histogram!(LOGIN_DURATION, "tenant" => self.tenant.clone(), "outcome" => outcome)
            .record(took);
    }
}

/// Recordings a thread has not handed over yet, at most this many.
const BATCH: usize = 64;

/// A request counter's handles and counts not handed over: by tenant, then
/// route, then status class.
type RequestCounts = HashMap<Box<str>, HashMap<Box<str>, [Option<(Counter, u64)>; 5]>>;

/// One thread's request counts and verify times not yet handed to the
/// shared handles. Its lock is taken by its own thread, and by a scrape.
#[derive(Default)]
struct Pending {
    requests: RequestCounts,
    /// Handles and times, by [`TenantMeters`] slot.
    verify: Vec<Option<(Histogram, Vec<f64>)>>,
    /// Verdict cache lookups, by [`cache_lookup`]'s slot.
    cache_lookups: [u64; 4],
    /// Recordings held, of every kind.
    samples: usize,
}

impl Pending {
    fn hand_over(&mut self) {
        for classes in self.requests.values_mut().flat_map(HashMap::values_mut) {
            for (counter, count) in classes.iter_mut().flatten() {
                if *count > 0 {
                    counter.increment(std::mem::take(count));
                }
            }
        }
        for (histogram, samples) in self.verify.iter_mut().flatten() {
            for took in samples.drain(..) {
                histogram.record(took);
            }
        }
        for (slot, count) in self.cache_lookups.iter_mut().enumerate() {
            if *count > 0 {
                cache_counter(slot).increment(std::mem::take(count));
            }
        }
        self.samples = 0;
    }
}

/// Every thread's [`Pending`], for a scrape to hand over. A thread that
/// ended leaves its batch here (handing it over from a thread-local
/// destructor would use the exporter's clock, whose own thread-local may be
/// gone): the next scrape hands it over and forgets it.
static EVERY_PENDING: Mutex<Vec<Arc<Mutex<Pending>>>> = Mutex::new(Vec::new());

thread_local! {
    static PENDING: Arc<Mutex<Pending>> = {
        let pending = Arc::new(Mutex::new(Pending::default()));
        locked(&EVERY_PENDING).push(Arc::clone(&pending));
        pending
    };
}

/// Counts are plain numbers: a panic elsewhere leaves nothing half-made.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `record` on this thread's batch, handing it over once full.
fn with_pending(record: impl FnOnce(&mut Pending)) {
    let mut record = Some(record);
    let _ = PENDING.try_with(|pending| {
        let mut pending = locked(pending);
        if let Some(record) = record.take() {
            record(&mut pending);
        }
        if pending.samples >= BATCH {
            pending.hand_over();
        }
    });
    if let Some(record) = record {
        // The thread is ending: a batch of its own, for the next scrape.
        let mut pending = Pending::default();
        record(&mut pending);
        locked(&EVERY_PENDING).push(Arc::new(Mutex::new(pending)));
    }
}

/// Hands every thread's batch over (before a scrape), and forgets those
/// of threads that ended.
fn hand_over_all() {
    let every: Vec<_> = locked(&EVERY_PENDING).clone();
    for pending in &every {
        locked(pending).hand_over();
    }
    drop(every);
    // Only the list holds an ended thread's batch (handed over above; one
    // that ends meanwhile waits for the next scrape).
    locked(&EVERY_PENDING)
        .retain(|pending| Arc::strong_count(pending) > 1 || locked(pending).samples > 0);
}

/// The status class labels, by [`class_index`].
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Where `status`'s class stands in [`STATUS_CLASSES`] (anything not 1xx
/// to 4xx counts as 5xx).
fn class_index(status: u16) -> usize {
    match status / 100 {
        class @ 1..=4 => usize::from(class) - 1,
        _ => 4,
    }
}

/// The status class label of an HTTP status code.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[class_index(status)]
}

/// Counts one request; `tenant` is empty off any tenant (admin listener,
/// no tenant matched).
pub fn request(tenant: Option<&str>, route: &str, status: u16) {
    let tenant = tenant.unwrap_or("");
    let slot = class_index(status);
    with_pending(|pending| {
        pending.samples += 1;
        if let Some((_, count)) = pending
            .requests
            .get_mut(tenant)
            .and_then(|routes| routes.get_mut(route))
            .and_then(|classes| classes[slot].as_mut())
        {
            *count += 1;
            return;
        }
        let counter = metrics::counter!(
            HTTP_REQUESTS,
            "tenant" => tenant.to_owned(),
            "route" => route.to_owned(),
            "status" => STATUS_CLASSES[slot]
        );
        let classes = pending
            .requests
            .entry(tenant.into())
            .or_default()
            .entry(route.into())
            .or_default();
        classes[slot] = Some((counter, 1));
    });
}

/// Records one store call of `backend` (`redis`, `embedded`): its time, and
/// whether it failed.
pub fn store_call(backend: &'static str, operation: &'static str, took: Duration, failed: bool) {
    metrics::histogram!(STORE_DURATION, "backend" => backend, "operation" => operation)
        .record(took);
    if failed {
        metrics::counter!(STORE_ERRORS, "backend" => backend, "operation" => operation)
            .increment(1);
    }
}

/// What the verdict cache was asked for.
#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    Token,
    ApiKey,
}

/// Counts one verdict cache lookup, in this thread's batch.
pub fn cache_lookup(verdict: Verdict, hit: bool) {
    let slot = 2 * (verdict as usize) + usize::from(hit);
    with_pending(|pending| {
        pending.cache_lookups[slot] += 1;
        pending.samples += 1;
    });
}

/// The verdict cache counter of `slot` (see [`cache_lookup`]).
fn cache_counter(slot: usize) -> Counter {
    use metrics::counter;
    match slot {
        0 => counter!(CACHE_LOOKUPS, "kind" => "token", "result" => "miss"),
        1 => counter!(CACHE_LOOKUPS, "kind" => "token", "result" => "hit"),
        2 => counter!(CACHE_LOOKUPS, "kind" => "api_key", "result" => "miss"),
        _ => counter!(CACHE_LOOKUPS, "kind" => "api_key", "result" => "hit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of `name` whose labels include `labels`, from `text`.
    fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
        text.lines()
            .find(|line| line.starts_with(name) && line.contains(labels))
            .and_then(|line| line.rsplit(' ').next())
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn a_scrape_sees_what_each_thread_has_not_handed_over_yet() {
        install();
        let meters = TenantMeters::new("meters-unit");
        let labels = r#"{tenant="meters-unit",route="unit",status="2xx"}"#;
        // Fewer than a batch each, on a thread that ends and on one that goes on.
        std::thread::scope(|threads| {
            threads.spawn(|| {
                for _ in 0..3 {
                    request(Some("meters-unit"), "unit", 200);
                    meters.verify(Duration::from_micros(70));
                }
            });
        });
        request(Some("meters-unit"), "unit", 204);
        meters.verify(Duration::from_micros(70));
        let text = render().unwrap();
        assert_eq!(value(&text, HTTP_REQUESTS, labels), Some(4.0), "{text}");
        let count = format!("{VERIFY_DURATION}_count");
        assert_eq!(
            value(&text, &count, r#"tenant="meters-unit""#),
            Some(4.0),
            "{text}"
        );
        // Past a batch, the thread hands its own over without a scrape.
        for _ in 0..BATCH {
            request(Some("meters-unit"), "unit", 200);
        }
        let text = render().unwrap();
        assert_eq!(
            value(&text, HTTP_REQUESTS, labels),
            Some(4.0 + BATCH as f64)
        );
    }
}
