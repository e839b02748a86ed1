//! polyauth behind real nginx and Caddy, in front of a real upstream, with
//! the example configurations the README shows: what reaches the upstream,
//! and what the client gets.

use reqwest::Method;
use serde_json::Value;

use crate::forward_auth::ruled_tenant;
use crate::helpers::{PASSWORD, Setup, TestApp};
use crate::proxy_servers::{Backends, Caddy, Nginx, ProxyServer, example};
use crate::upstream::Upstream;

/// polyauth (the tenant at `/pixyle`, as the examples name it), the echo
/// upstream, and a proxy in front of both.
struct Stack {
    app: TestApp,
    // Kept alive for the proxy to reach.
    _upstream: Upstream,
    proxy: ProxyServer,
}

impl Stack {
    async fn start(proxy: fn(Backends) -> ProxyServer) -> Self {
        let app = TestApp::spawn(Setup::new().tenant("a", ruled_tenant("/pixyle"))).await;
        let upstream = Upstream::start();
        let backends = Backends {
            polyauth_port: app.port,
            upstream_port: upstream.port,
        };
        // Starting a process blocks: not on the runtime's thread.
        let proxy = tokio::task::spawn_blocking(move || proxy(backends))
            .await
            .unwrap();
        Self {
            app,
            _upstream: upstream,
            proxy,
        }
    }

    async fn login(&self, email: &str) -> String {
        let (status, body) = self.app.pixyle_login("/pixyle", email, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `method path` through the proxy, with a token and a forged
    /// `X-Auth-Subject`: the status, and what the upstream saw when it was reached.
    async fn send(&self, method: Method, path: &str, token: Option<&str>) -> (u16, Option<Value>) {
        let mut request = self
            .app
            .client
            .request(method, self.proxy.url(path))
            .header("x-auth-subject", "forged-subject")
            .header("x-auth-roles", "admin");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let echoed = serde_json::from_str::<Value>(&text)
            .ok()
            .filter(|echo| echo.get("headers").is_some());
        (status, echoed)
    }

    /// The status of `GET path`, asserting the upstream is reached exactly on 200.
    async fn status(&self, path: &str, token: Option<&str>) -> u16 {
        let (status, echoed) = self.send(Method::GET, path, token).await;
        assert_eq!(
            echoed.is_some(),
            status == 200,
            "{path}: {status}\n{}",
            self.proxy.logs()
        );
        status
    }
}

const AUTH_HEADERS: [&str; 5] = [
    "x-auth-tenant",
    "x-auth-subject",
    "x-auth-email",
    "x-auth-roles",
    "x-auth-company",
];

/// The values of header `name` the upstream received.
fn received(echoed: &Value, name: &str) -> Vec<String> {
    let values = echoed["headers"][name]
        .as_array()
        .cloned()
        .unwrap_or_default();
    values
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn the_example_guards_the_upstream(proxy: fn(Backends) -> ProxyServer) {
    let stack = Stack::start(proxy).await;
    let admin = stack.login("user@a.test").await;
    let plain = stack.login("plain@a.test").await;
    let subject = stack.app.verify("/pixyle", &plain).await.headers()["x-auth-subject"]
        .to_str()
        .unwrap()
        .to_owned();

    // No token, or a bad one: 401, the upstream never asked.
    assert_eq!(stack.status("/orders", None).await, 401);
    assert_eq!(stack.status("/orders", Some("not-a-token")).await, 401);

    // A valid token: the upstream sees who it is, never the client's forgery.
    let (status, echoed) = stack
        .send(Method::GET, "/orders/7?full=1", Some(&plain))
        .await;
    assert_eq!(status, 200, "{}", stack.proxy.logs());
    let echoed = echoed.unwrap();
    assert_eq!(echoed["path"], "/orders/7");
    assert_eq!(echoed["query"], "full=1");
    assert_eq!(received(&echoed, "x-auth-subject"), [subject.as_str()]);
    assert_eq!(received(&echoed, "x-auth-tenant"), ["a"]);
    assert_eq!(received(&echoed, "x-auth-email"), ["plain@a.test"]);
    assert_eq!(received(&echoed, "x-auth-roles"), ["user"]);
    assert!(received(&echoed, "x-auth-company").is_empty(), "{echoed}");
    // Any method passes through.
    let (status, echoed) = stack.send(Method::DELETE, "/orders/7", Some(&plain)).await;
    assert_eq!(status, 200, "{}", stack.proxy.logs());
    assert_eq!(echoed.unwrap()["method"], "DELETE");

    // Public: no token needed, and nothing forged gets through.
    let (status, echoed) = stack.send(Method::GET, "/public/page", None).await;
    assert_eq!(status, 200, "{}", stack.proxy.logs());
    let echoed = echoed.unwrap();
    for header in AUTH_HEADERS {
        assert!(received(&echoed, header).is_empty(), "{header}: {echoed}");
    }
    let (_, echoed) = stack.send(Method::GET, "/public/page", Some(&plain)).await;
    assert_eq!(
        received(&echoed.unwrap(), "x-auth-subject"),
        [subject.as_str()]
    );
    assert_eq!(stack.status("/health", None).await, 200);
    // ... for the methods listed only.
    let (status, _) = stack.send(Method::POST, "/public/page", None).await;
    assert_eq!(status, 401);

    // A role rule, and a deny rule.
    assert_eq!(stack.status("/admin/users", None).await, 401);
    assert_eq!(stack.status("/admin/users", Some(&plain)).await, 403);
    assert_eq!(stack.status("/admin/users", Some(&admin)).await, 200);
    assert_eq!(stack.status("/internal/metrics", Some(&admin)).await, 403);
    // A path that reads two ways is refused, not taken for a public one.
    assert_eq!(stack.status("/public/..%2Finternal", None).await, 403);
    assert_eq!(stack.status("/PUBLIC/page", None).await, 401);

    // A revoked token: 401.
    let revoked = stack
        .app
        .client
        .delete(stack.app.url("/pixyle/auth/v1/revoke_access"))
        .bearer_auth(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(stack.status("/orders", Some(&plain)).await, 401);
    assert_eq!(stack.status("/orders", Some(&admin)).await, 200);
}

#[tokio::test]
async fn nginx_with_the_example_config_guards_the_upstream() {
    the_example_guards_the_upstream(Nginx::start).await;
}

#[tokio::test]
async fn caddy_with_the_example_caddyfile_guards_the_upstream() {
    the_example_guards_the_upstream(Caddy::start).await;
}

#[test]
fn the_readme_shows_the_example_files_verbatim() {
    let readme = std::fs::read_to_string(crate::tools::repo().join("README.md")).unwrap();
    for file in ["nginx.conf", "Caddyfile"] {
        let text = example(file);
        assert!(
            readme.contains(&text),
            "README.md does not show examples/proxy/{file} as it is"
        );
    }
}
