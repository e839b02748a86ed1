//! A tenant's `upstream`: where the proxy forwards what is not polyauth's
//! to answer, and the limits it forwards under.
//!
//! An https upstream's certificate is verified (name and chain, by rustls)
//! against the system's trust store, or only against the CAs of
//! `upstream_ca_file` when the tenant names one (nginx's
//! `proxy_ssl_trusted_certificate`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::tenant::TenantConfig;

/// No answer's head within this time after the request is sent: 504.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest proxied request body by default (1 GiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 30;

/// A validated upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Prepended to every forwarded path; empty, or `/base` without a
    /// trailing slash.
    pub base: String,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    /// How an https upstream is verified (`None` for http).
    pub tls: Option<Arc<ClientConfig>>,
}

impl Upstream {
    /// The tenant's upstream, if it has one; errors are `(key, problem)`.
    pub fn of(config: &TenantConfig) -> Result<Option<Self>, (&'static str, String)> {
        let Some(url) = &config.upstream else {
            for (key, set) in [
                ("upstream_timeout", config.upstream_timeout.is_some()),
                (
                    "upstream_max_body_bytes",
                    config.upstream_max_body_bytes.is_some(),
                ),
                ("upstream_ca_file", config.upstream_ca_file.is_some()),
            ] {
                if set {
                    return Err((key, "only has a meaning with `upstream`".into()));
                }
            }
            return Ok(None);
        };
        let (scheme, authority, base) = parse(url).map_err(|problem| ("upstream", problem))?;
        let max_body_bytes = config
            .upstream_max_body_bytes
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(("upstream_max_body_bytes", "must be above zero".into()));
        }
        let ca_file = config.upstream_ca_file.as_deref();
        let tls = match (scheme == Scheme::HTTPS, ca_file) {
            (true, _) => {
                let key = ca_file.map_or("upstream", |_| "upstream_ca_file");
                Some(Arc::new(client_config(ca_file).map_err(|e| (key, e))?))
            }
            (false, Some(_)) => {
                return Err((
                    "upstream_ca_file",
                    "only has a meaning with an https `upstream`".into(),
                ));
            }
            (false, None) => None,
        };
        Ok(Some(Self {
            scheme,
            authority,
            base,
            timeout: config.upstream_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            max_body_bytes,
            tls,
        }))
    }

    /// The upstream's URI for `path` (under the tenant's mount, starting
    /// with `/`) and `query`.
    pub fn uri(&self, path: &str, query: &str) -> Result<Uri, http::Error> {
        let mut target = String::with_capacity(self.base.len() + path.len() + query.len() + 1);
        target.push_str(&self.base);
        target.push_str(path);
        if !query.is_empty() {
            target.push('?');
            target.push_str(query);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(target)?)
            .build()
    }
}

/// `http://host[:port][/base]`: scheme, authority and base path. The
/// problem never quotes the value (it could hold a password).
fn parse(url: &str) -> Result<(Scheme, Authority, String), String> {
    const SHAPE: &str = "write it as `http://host:port` or `https://host:port/base`";
    let uri: Uri = url.parse().map_err(|_| format!("not a URL; {SHAPE}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => {
            return Err(format!("must start with `http://` or `https://`; {SHAPE}"));
        }
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("names no host; {SHAPE}"))?;
    if authority.as_str().contains('@') {
        return Err("must not hold a user or password".into());
    }
    if authority.host().is_empty() {
        return Err(format!("names no host; {SHAPE}"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("must have no query or fragment; {SHAPE}"));
    }
    let base = uri.path().trim_end_matches('/');
    if base
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("the base path must not hold `.` or `..` segments".into());
    }
    Ok((scheme, authority, base.to_owned()))
}

/// TLS for an https upstream: rustls's safe defaults, trusting the CAs of
/// `ca_file` or else the system's.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!("cannot read PEM certificates from {} ({e})", path.display())
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!("{} holds no usable certificate", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "the system's trust store has no certificate to verify an https upstream \
                     with; install one (ca-certificates) or give `upstream_ca_file`"
                        .into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_is_scheme_host_port_and_an_optional_base() {
        let (scheme, authority, base) = parse("http://127.0.0.1:7000").unwrap();
        assert_eq!(
            (scheme.as_str(), authority.as_str(), base.as_str()),
            ("http", "127.0.0.1:7000", "")
        );
        let (scheme, authority, base) = parse("https://app.internal/base/v1/").unwrap();
        assert_eq!(scheme, Scheme::HTTPS);
        assert_eq!(
            (authority.as_str(), base.as_str()),
            ("app.internal", "/base/v1")
        );
        for bad in [
            "127.0.0.1:7000",
            "ftp://host/",
            "ws://host/",
            "http://",
            "http:///path",
            "http://user:secret@host/",
            "http://host/?a=b",
            "http://host/#top",
            "http://host/a/../b",
            "not a url",
        ] {
            let problem = parse(bad).expect_err(bad);
            assert!(!problem.contains("secret"), "{problem}");
        }
    }

    #[test]
    fn forwarded_paths_go_below_the_base_with_their_query() {
        let upstream = Upstream {
            scheme: Scheme::HTTP,
            authority: Authority::from_static("up:81"),
            base: "/base".into(),
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            tls: None,
        };
        assert_eq!(
            upstream.uri("/a/b", "c=d&e").unwrap().to_string(),
            "http://up:81/base/a/b?c=d&e"
        );
        assert_eq!(
            upstream.uri("/", "").unwrap().to_string(),
            "http://up:81/base/"
        );
    }
}
