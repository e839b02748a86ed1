//! Which tenant a request is for, found in two map lookups rather than by
//! trying every tenant's mount in turn: a router holding a thousand
//! tenants' scopes compared the path with each of them, so the last tenant
//! paid for the thousand before it.
//!
//! Each tenant is served by an app of its own (its mounts, with the same
//! middleware as every other); the dispatcher picks the app and the app
//! routes as before. The pick follows actix's own rules, so it agrees with
//! what the app's router then matches: the `Host` first (a tenant with
//! `hosts` takes every path on them), then the longest prefix that ends at
//! a segment boundary of the path as actix reads it ([`Url`]). A request
//! for no tenant goes to an app with nothing mounted, which answers it as
//! before (`no_tenant`, or 400 for an unreadable `Host`).
//!
//! The tenants served are a [`Mounted`] set, replaced whole by a reload:
//! each worker builds the new set's apps off the request path, then swaps
//! them in at once, so a request is routed by the old set or the new one,
//! never a mix; a request already routed finishes on the apps it started
//! on (its future holds them).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::Request;
use actix_service::{Service, ServiceFactory};
use actix_web::dev::{AppConfig, RequestHead, Url};
use tokio::sync::watch;

use super::host::request_host;
use super::state::TenantContext;

/// The tenants served, and where each is found.
pub struct Mounted {
    /// Counts the sets mounted: 0 at start, one more per reload.
    pub generation: u64,
    pub contexts: Vec<Arc<TenantContext>>,
    picks: Tenants,
    by_id: HashMap<String, usize>,
}

impl Mounted {
    pub fn new(generation: u64, contexts: Vec<Arc<TenantContext>>) -> Self {
        let picks = Tenants::new(&contexts);
        let by_id = contexts
            .iter()
            .enumerate()
            .map(|(index, context)| (context.tenant.id.clone(), index))
            .collect();
        Self {
            generation,
            contexts,
            picks,
            by_id,
        }
    }

    /// The tenant with id `id`.
    pub fn tenant(&self, id: &str) -> Option<&Arc<TenantContext>> {
        self.by_id.get(id).map(|index| &self.contexts[*index])
    }
}

/// The set served now, and every later one as reloads make it.
pub type Live = watch::Receiver<Arc<Mounted>>;

/// Which set each worker routes by: what a reload waits on before it says
/// it is done.
#[derive(Default)]
pub struct Workers {
    /// The generation each worker has mounted; `u64::MAX` for one stopped.
    mounted: std::sync::Mutex<Vec<u64>>,
    changed: tokio::sync::Notify,
}

impl Workers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.mounted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker that mounted `generation`; answers its number.
    fn join(&self, generation: u64) -> usize {
        let mut mounted = self.lock();
        mounted.push(generation);
        mounted.len() - 1
    }

    fn mounted(&self, worker: usize, generation: u64) {
        if let Some(slot) = self.lock().get_mut(worker) {
            *slot = generation;
        }
        self.changed.notify_waiters();
    }

    /// Waits until every worker routes by `generation` (or a later one),
    /// for at most `limit`; `false` when some did not within it.
    pub async fn all_at(&self, generation: u64, limit: std::time::Duration) -> bool {
        let all = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.lock().iter().all(|mounted| *mounted >= generation) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }
}

/// Where each tenant is found: indexes into the tenant list.
pub struct Tenants {
    by_host: HashMap<String, usize>,
    by_prefix: HashMap<String, usize>,
}

impl Tenants {
    pub fn new(tenants: &[Arc<TenantContext>]) -> Self {
        Self::of_mounts(
            tenants
                .iter()
                .map(|c| (c.hosts.as_slice(), c.path_prefix.as_deref())),
        )
    }

    /// Each tenant's hosts and prefix, in tenant order; the first tenant
    /// naming a host or prefix keeps it.
    fn of_mounts<'a>(mounts: impl Iterator<Item = (&'a [String], Option<&'a str>)>) -> Self {
        let mut by_host = HashMap::new();
        let mut by_prefix = HashMap::new();
        for (index, (hosts, prefix)) in mounts.enumerate() {
            for host in hosts {
                by_host.entry(host.to_ascii_lowercase()).or_insert(index);
            }
            if let Some(prefix) = prefix {
                by_prefix.entry(prefix.to_owned()).or_insert(index);
            }
        }
        Self { by_host, by_prefix }
    }

    /// The tenant `head` is for, if any.
    pub fn pick(&self, head: &RequestHead) -> Option<usize> {
        if !self.by_host.is_empty() {
            // An unreadable Host goes to no tenant, which refuses it.
            let host = request_host(head).ok()?;
            if let Some(index) = host.and_then(|host| self.host(host)) {
                return Some(index);
            }
        }
        if self.by_prefix.is_empty() {
            return None;
        }
        let url = Url::new(head.uri.clone());
        let path = url.path();
        // The whole path, then each shorter prefix ending before a `/`.
        let mut end = path.len();
        loop {
            if let Some(index) = self.by_prefix.get(&path[..end]) {
                return Some(*index);
            }
            end = path[..end].rfind('/')?;
            if end == 0 {
                return None;
            }
        }
    }

    fn host(&self, host: &str) -> Option<usize> {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&host.to_ascii_lowercase()).copied()
        } else {
            self.by_host.get(host).copied()
        }
    }
}

/// Makes, per worker, one service per tenant app and one for no tenant,
/// with `make` (an app for a tenant, or for none), and makes them again
/// for every set a reload mounts.
pub struct Dispatch<M> {
    pub make: Arc<M>,
    pub live: Live,
    pub workers: Arc<Workers>,
}

/// One worker's services for one mounted set.
struct Built<S> {
    mounted: Arc<Mounted>,
    services: Vec<S>,
    none: S,
}

pub struct Dispatcher<S> {
    built: Rc<RefCell<Built<S>>>,
    /// This worker's number in `workers`.
    worker: usize,
    workers: Arc<Workers>,
}

impl<S> Drop for Dispatcher<S> {
    /// A stopped worker is waited for no more.
    fn drop(&mut self) {
        self.workers.mounted(self.worker, u64::MAX);
    }
}

type Made<S, E> = Pin<Box<dyn Future<Output = Result<S, E>>>>;

/// The services of every app of `mounted`, and of the app for no tenant.
async fn build<M, F>(
    make: &M,
    mounted: Arc<Mounted>,
    config: AppConfig,
) -> Result<Built<F::Service>, F::InitError>
where
    M: Fn(Option<&Arc<TenantContext>>) -> F,
    F: ServiceFactory<Request, Config = AppConfig>,
{
    let mut services = Vec::with_capacity(mounted.contexts.len());
    for context in &mounted.contexts {
        services.push(make(Some(context)).new_service(config.clone()).await?);
        // Requests waiting on this worker go first: a reload of many
        // tenants never holds them up for more than one tenant's apps.
        tokio::task::yield_now().await;
    }
    let none = make(None).new_service(config).await?;
    Ok(Built {
        mounted,
        services,
        none,
    })
}

impl<M, F> ServiceFactory<Request> for Dispatch<M>
where
    M: Fn(Option<&Arc<TenantContext>>) -> F + 'static,
    F: ServiceFactory<Request, Config = AppConfig> + 'static,
    F::Future: 'static,
    F::Service: 'static,
    F::InitError: std::fmt::Debug,
{
    type Response = F::Response;
    type Error = F::Error;
    type Config = AppConfig;
    type Service = Dispatcher<F::Service>;
    type InitError = F::InitError;
    type Future = Made<Self::Service, F::InitError>;

    fn new_service(&self, config: AppConfig) -> Self::Future {
        let make = Arc::clone(&self.make);
        let mut live = self.live.clone();
        let workers = Arc::clone(&self.workers);
        Box::pin(async move {
            let mounted = Arc::clone(&live.borrow_and_update());
            let generation = mounted.generation;
            let built = Rc::new(RefCell::new(build(&*make, mounted, config.clone()).await?));
            // Counted once it routes: a worker that never came up is not
            // waited for.
            let worker = workers.join(generation);
            let told = Arc::clone(&workers);
            // This worker follows every reload until it stops: the new
            // set's apps are built here, on the worker, between requests,
            // then swapped in whole.
            let followed = Rc::downgrade(&built);
            tokio::task::spawn_local(async move {
                while live.changed().await.is_ok() {
                    let mounted = Arc::clone(&live.borrow_and_update());
                    if followed.strong_count() == 0 {
                        return;
                    }
                    let generation = mounted.generation;
                    match build(&*make, mounted, config.clone()).await {
                        Ok(next) => {
                            // The worker may have stopped meanwhile: then
                            // there is nothing to swap, nor to tell.
                            let Some(built) = followed.upgrade() else {
                                return;
                            };
                            *built.borrow_mut() = next;
                            told.mounted(worker, generation);
                        }
                        Err(error) => tracing::error!(
                            ?error,
                            "a worker could not build the reloaded tenants; it keeps serving the previous ones"
                        ),
                    }
                }
            });
            Ok(Dispatcher {
                built,
                worker,
                workers,
            })
        })
    }
}

impl<S: Service<Request>> Service<Request> for Dispatcher<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    /// actix apps are always ready.
    fn poll_ready(&self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&self, req: Request) -> Self::Future {
        let built = self.built.borrow();
        let service = built
            .mounted
            .picks
            .pick(req.head())
            .and_then(|index| built.services.get(index))
            .unwrap_or(&built.none);
        service.call(req)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header;
    use actix_web::test::TestRequest;

    use super::*;

    fn tenants() -> Tenants {
        let hosts = ["Auth.Example.test".to_owned()];
        let none: &[String] = &[];
        Tenants::of_mounts(
            [
                (none, Some("/a")),
                (none, Some("/a/b")),
                (&hosts[..], Some("/h")),
                (none, Some("/zz")),
            ]
            .into_iter(),
        )
    }

    fn pick(uri: &str, host: &str) -> Option<usize> {
        let req = TestRequest::default()
            .uri(uri)
            .insert_header((header::HOST, host))
            .to_srv_request();
        tenants().pick(req.head())
    }

    #[test]
    fn the_longest_prefix_ending_at_a_segment_wins() {
        assert_eq!(pick("/a", "x"), Some(0));
        assert_eq!(pick("/a/", "x"), Some(0));
        assert_eq!(pick("/a/c/d", "x"), Some(0));
        assert_eq!(pick("/a/b", "x"), Some(1));
        assert_eq!(pick("/a/b/c?q=1", "x"), Some(1));
        assert_eq!(pick("/a/bc", "x"), Some(0));
        assert_eq!(pick("/ab", "x"), None);
        assert_eq!(pick("/", "x"), None);
        assert_eq!(pick("/zz/_polyauth/verify", "x"), Some(3));
    }

    #[test]
    fn a_host_takes_every_path_on_it_whatever_its_case_or_port() {
        assert_eq!(pick("/a/b", "auth.example.test"), Some(2));
        assert_eq!(pick("/anything", "AUTH.example.TEST:8080"), Some(2));
        assert_eq!(pick("/h/x", "other.test"), Some(2));
    }

    #[test]
    fn the_path_is_read_as_actix_matches_it() {
        // %61 is `a`: actix decodes it before matching, and so does the pick.
        assert_eq!(pick("/%61/b", "x"), Some(1));
        // An encoded `/` is not a segment boundary for either.
        assert_eq!(pick("/a%2Fb", "x"), None);
    }

    #[test]
    fn an_unreadable_host_goes_to_no_tenant() {
        assert_eq!(pick("/a", "bad host"), None);
    }
}
