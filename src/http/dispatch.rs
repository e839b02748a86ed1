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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::Request;
use actix_service::{Service, ServiceFactory};
use actix_web::dev::{AppConfig, RequestHead, Url};

use super::host::request_host;
use super::state::TenantContext;

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

/// Makes, per worker, one service per tenant app and one for no tenant.
pub struct Dispatch<F> {
    pub apps: Vec<F>,
    pub none: F,
    pub tenants: Arc<Tenants>,
}

pub struct Dispatcher<S> {
    services: Vec<S>,
    none: S,
    tenants: Arc<Tenants>,
}

type Made<S, E> = Pin<Box<dyn Future<Output = Result<S, E>>>>;

impl<F> ServiceFactory<Request> for Dispatch<F>
where
    F: ServiceFactory<Request, Config = AppConfig>,
    F::Future: 'static,
    F::Service: 'static,
{
    type Response = F::Response;
    type Error = F::Error;
    type Config = AppConfig;
    type Service = Dispatcher<F::Service>;
    type InitError = F::InitError;
    type Future = Made<Self::Service, F::InitError>;

    fn new_service(&self, config: AppConfig) -> Self::Future {
        let apps: Vec<_> = self
            .apps
            .iter()
            .map(|app| app.new_service(config.clone()))
            .collect();
        let none = self.none.new_service(config);
        let tenants = Arc::clone(&self.tenants);
        Box::pin(async move {
            let mut services = Vec::with_capacity(apps.len());
            for app in apps {
                services.push(app.await?);
            }
            Ok(Dispatcher {
                services,
                none: none.await?,
                tenants,
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
        let service = self
            .tenants
            .pick(req.head())
            .and_then(|index| self.services.get(index))
            .unwrap_or(&self.none);
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
