//! Prometheus metrics, served as text by the admin listener's `/metrics`.
//!
//! One recorder for the process (the `metrics` facade's global), installed
//! once by [`install`]; a second call, or a second gateway in the same
//! process, shares it. Recording goes through the facade's handles, which
//! are atomics: the per-tenant ones ([`TenantMeters`]) are registered once
//! when the tenant is built, so verifying a token records without a lookup.
//!
//! Label values come from configuration (tenant ids) or from fixed sets
//! (route tags, status classes, outcomes, store operations): never a user,
//! a token or an address.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
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
        CACHE_LOOKUPS,
        "Redis verdict cache lookups, by kind (token, api_key) and result (hit, miss)."
    );
}

/// A tenant's handles, registered once when it is built.
pub struct TenantMeters {
    /// The tenant id as a label value (shared, not copied, per use).
    pub tenant: SharedString,
    pub verify: Histogram,
    pub lockouts: Counter,
}

impl TenantMeters {
    pub fn new(tenant_id: &str) -> Self {
        let tenant = SharedString::from_shared(std::sync::Arc::<str>::from(tenant_id));
        Self {
            verify: metrics::histogram!(VERIFY_DURATION, "tenant" => tenant.clone()),
            lockouts: metrics::counter!(LOCKOUTS, "tenant" => tenant.clone()),
            tenant,
        }
    }

    /// Records one login's time and outcome (`lockout` also counts it).
    pub fn login(&self, outcome: &'static str, took: Duration) {
        metrics::histogram!(LOGIN_DURATION, "tenant" => self.tenant.clone(), "outcome" => outcome)
            .record(took);
    }
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

/// One thread's handles of the request counter: tenant, then route, then
/// status class. The registry's maps are shared by every thread; a handle
/// found here costs two string lookups in this thread's own maps.
type RequestCounters = HashMap<Box<str>, HashMap<Box<str>, [Option<Counter>; 5]>>;

thread_local! {
    static REQUEST_COUNTERS: RefCell<RequestCounters> = RefCell::new(HashMap::new());
}

/// Counts one request; `tenant` is empty off any tenant (admin listener,
/// no tenant matched).
pub fn request(tenant: Option<&str>, route: &str, status: u16) {
    let tenant = tenant.unwrap_or("");
    let slot = class_index(status);
    REQUEST_COUNTERS.with_borrow_mut(|counters| {
        if let Some(counter) = counters
            .get(tenant)
            .and_then(|routes| routes.get(route))
            .and_then(|classes| classes[slot].as_ref())
        {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!(
            HTTP_REQUESTS,
            "tenant" => tenant.to_owned(),
            "route" => route.to_owned(),
            "status" => STATUS_CLASSES[slot]
        );
        counter.increment(1);
        let classes = counters
            .entry(tenant.into())
            .or_default()
            .entry(route.into())
            .or_default();
        classes[slot] = Some(counter);
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

/// Counts one verdict cache lookup (static keys: no allocation).
pub fn cache_lookup(verdict: Verdict, hit: bool) {
    use metrics::counter;
    match (verdict, hit) {
        (Verdict::Token, true) => counter!(CACHE_LOOKUPS, "kind" => "token", "result" => "hit"),
        (Verdict::Token, false) => counter!(CACHE_LOOKUPS, "kind" => "token", "result" => "miss"),
        (Verdict::ApiKey, true) => counter!(CACHE_LOOKUPS, "kind" => "api_key", "result" => "hit"),
        (Verdict::ApiKey, false) => {
            counter!(CACHE_LOOKUPS, "kind" => "api_key", "result" => "miss")
        }
    }
    .increment(1);
}
