//! Lazy migration off a vendor (SPEC §12), against a real legacy server: a
//! second `polyauth` process speaking the same dialect, with the old users
//! in its file, plays the vendor. The gateway under test has none of them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{ADMIN_TOKEN, with_admin};
use crate::helpers::{PASSWORD, Served, Setup, password_hash, status_json};

#[derive(Clone, Copy, Debug)]
enum Vendor {
    Pixyle,
    Visualyze,
    PayHub,
}

impl Vendor {
    fn dialect(self) -> &'static str {
        match self {
            Vendor::Pixyle => "pixyle",
            Vendor::Visualyze => "visualyze",
            Vendor::PayHub => "payhub",
        }
    }

    /// The login route under a tenant mounted at `/t`.
    fn login_path(self) -> &'static str {
        match self {
            Vendor::Pixyle => "/t/auth/v1/token",
            Vendor::Visualyze => "/t/api/v1/user/login",
            Vendor::PayHub => "/t/user/login",
        }
    }

    /// A tenant `t` at `/t` of this dialect; `extra` is appended.
    fn tenant(self, issuer: &str, extra: &str) -> String {
        format!(
            "id = \"t\"\ndialect = \"{}\"\npath_prefix = \"/t\"\nissuer = \"{issuer}\"\naudience = \"t-api\"\n{extra}\n",
            self.dialect()
        )
    }

    /// Logs in at `base` the way this vendor's own clients do: status and
    /// body, and the access token when it succeeded.
    async fn login(
        self,
        client: &reqwest::Client,
        base: &str,
        email: &str,
        password: &str,
    ) -> (u16, Value, Option<String>) {
        let url = format!("{base}{}", self.login_path());
        let request = match self {
            Vendor::Pixyle => client
                .post(url)
                .json(&json!({"email": email, "password": password})),
            Vendor::Visualyze => client.post(url).multipart(
                reqwest::multipart::Form::new()
                    .text("email", email.to_owned())
                    .text("password", password.to_owned()),
            ),
            Vendor::PayHub => client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    serde_urlencoded::to_string([("emailId", email), ("password", password)])
                        .unwrap(),
                ),
        };
        let (status, body) = status_json(request.send().await.unwrap()).await;
        let token = match self {
            Vendor::Pixyle => body["access_token"].as_str(),
            Vendor::Visualyze => body["data"]["token"].as_str(),
            Vendor::PayHub => body["responseData"]["token"].as_str(),
        };
        (status, body.clone(), token.map(str::to_owned))
    }

    /// Verifies `token` at `base`'s tenant: the status.
    async fn verify(self, client: &reqwest::Client, base: &str, token: &str) -> u16 {
        let request = client.get(format!("{base}/t/_polyauth/verify"));
        let request = match self {
            Vendor::PayHub => request.header("token", token),
            _ => request.bearer_auth(token),
        };
        request.send().await.unwrap().status().as_u16()
    }
}

/// Two users of the old vendor, both with [`PASSWORD`].
fn old_users() -> String {
    let hash = password_hash(PASSWORD);
    format!(
        "[[users]]\nemail = \"moved@old.test\"\npassword_hash = \"{hash}\"\n\
         [[users]]\nemail = \"stays@old.test\"\npassword_hash = \"{hash}\"\n"
    )
}

/// The vendor: a polyauth of the same dialect with the old users.
fn legacy(vendor: Vendor, dir: &std::path::Path) -> Served {
    let setup = Setup::new().tenant("t", vendor.tenant("http://legacy.test", &old_users()));
    Served::start(&setup.write(dir), "info")
}

/// The gateway under test: no users, `[migration]` to `legacy_url`.
fn gateway(
    vendor: Vendor,
    dir: &std::path::Path,
    legacy_url: &str,
    extra: &str,
) -> (Served, tempfile::TempDir) {
    let migration =
        format!("{extra}\n[migration]\nlegacy_login_url = {legacy_url:?}\ntimeout = \"2s\"\n");
    let (setup, token) =
        with_admin(Setup::new().tenant("t", vendor.tenant("http://gateway.test", &migration)));
    (Served::start(&setup.write(dir), "debug"), token)
}

/// The directory users of `served`'s tenant with `email`.
async fn found(client: &reqwest::Client, served: &Served, email: &str) -> Vec<Value> {
    let url = served.admin_url(&format!("/admin/v1/tenants/t/users?email={email}"));
    let response = client
        .request(Method::GET, url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");
    body["users"].as_array().unwrap().clone()
}

/// A client that opens a connection per request: the tests stop servers
/// and wait, longer than a server keeps an idle connection.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn issuer_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["iss"].as_str().unwrap().to_owned()
}

async fn first_login_moves_the_user_and_the_vendor_is_never_asked_again(vendor: Vendor) {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = legacy(vendor, old_dir.path());
    let (new, _token) = gateway(vendor, new_dir.path(), &old.url(vendor.login_path()), "");
    let client = client();
    let (old_base, new_base) = (old.url(""), new.url(""));

    // What the vendor answers an unknown user is what a refused replay answers.
    let (_, unknown, _) = vendor
        .login(&client, &old_base, "nobody@old.test", PASSWORD)
        .await;
    let (status, refused, token) = vendor
        .login(&client, &new_base, "moved@old.test", "wrong")
        .await;
    let (old_status, _, _) = vendor
        .login(&client, &old_base, "nobody@old.test", PASSWORD)
        .await;
    assert_eq!((status, &refused), (old_status, &unknown), "{vendor:?}");
    assert!(token.is_none());
    assert!(
        found(&client, &new, "moved@old.test").await.is_empty(),
        "a wrong password imports nothing"
    );

    let (status, body, token) = vendor
        .login(&client, &new_base, "Moved@old.test", PASSWORD)
        .await;
    let token = token.unwrap_or_else(|| panic!("{vendor:?}: {status} {body}"));
    assert_eq!(
        issuer_of(&token),
        "http://gateway.test",
        "the gateway's own token"
    );
    assert_eq!(vendor.verify(&client, &new_base, &token).await, 200);
    assert_eq!(
        vendor.verify(&client, &old_base, &token).await,
        401,
        "not the vendor's"
    );
    let users = found(&client, &new, "moved@old.test").await;
    assert_eq!(users.len(), 1, "{vendor:?}");
    assert_eq!(users[0]["hash_scheme"], "argon2id");
    assert_eq!(users[0]["email"], "moved@old.test");

    // The vendor goes away: the moved user logs in all the same, a user
    // it never moved does not, and nothing is imported for it.
    old.terminate();
    let _ = old.wait();
    let (status, body, token) = vendor
        .login(&client, &new_base, "moved@old.test", PASSWORD)
        .await;
    assert!(
        token.is_some(),
        "{vendor:?} without the vendor: {status} {body}"
    );
    let (_, _, token) = vendor
        .login(&client, &new_base, "moved@old.test", "wrong")
        .await;
    assert!(token.is_none());
    let (status, body, token) = vendor
        .login(&client, &new_base, "stays@old.test", PASSWORD)
        .await;
    assert!(token.is_none(), "{vendor:?}: {status} {body}");
    assert_eq!(
        (status, &body),
        (old_status, &unknown),
        "a dead vendor is an unknown user"
    );
    assert!(found(&client, &new, "stays@old.test").await.is_empty());

    let logs = new.logs();
    assert!(
        logs.contains("user moved over from the legacy vendor"),
        "{logs}"
    );
    assert!(
        !logs.contains(PASSWORD),
        "the password reached a log:\n{logs}"
    );
}

#[tokio::test]
async fn pixyle_users_move_on_their_first_login() {
    first_login_moves_the_user_and_the_vendor_is_never_asked_again(Vendor::Pixyle).await;
}

#[tokio::test]
async fn visualyze_users_move_on_their_first_login() {
    first_login_moves_the_user_and_the_vendor_is_never_asked_again(Vendor::Visualyze).await;
}

/// PayHub answers its refusals with HTTP 200: only the success body moves
/// a user.
#[tokio::test]
async fn payhub_users_move_on_their_first_login() {
    first_login_moves_the_user_and_the_vendor_is_never_asked_again(Vendor::PayHub).await;
}

/// A vendor that takes the connection and never answers: the login is
/// refused once the timeout passes, and counts towards lockout.
#[tokio::test]
async fn a_silent_vendor_is_a_refusal_after_the_timeout_and_counts_in_lockout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/t/auth/v1/token",
        silent.local_addr().unwrap().port()
    );
    // Accepted connections are held open, unread.
    let held = std::thread::spawn(move || {
        silent
            .incoming()
            .take(3)
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let dir = tempfile::tempdir().unwrap();
    let lockout = "[lockout]\nmax_failures = 2\nlock_for = \"10m\"\n";
    let (new, _token) = gateway(Vendor::Pixyle, dir.path(), &url, lockout);
    let client = client();
    let base = new.url("");
    for _ in 0..2 {
        let started = Instant::now();
        let (status, body, token) = Vendor::Pixyle
            .login(&client, &base, "moved@old.test", PASSWORD)
            .await;
        assert!(token.is_none());
        assert_eq!(
            (status, body),
            (401, json!({"error": "Invalid credentials"}))
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "answered before the timeout"
        );
    }
    let (status, _, _) = Vendor::Pixyle
        .login(&client, &base, "moved@old.test", PASSWORD)
        .await;
    assert_eq!(status, 429, "vendor failures count in lockout");
    assert!(found(&client, &new, "moved@old.test").await.is_empty());
    drop(held);
}

/// Nobody listens where the vendor should be: a refusal, nothing imported.
#[tokio::test]
async fn an_unreachable_vendor_is_a_refusal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/t/auth/v1/token");
    let dir = tempfile::tempdir().unwrap();
    let (new, _token) = gateway(Vendor::Pixyle, dir.path(), &url, "");
    let client = client();
    let (status, body, token) = Vendor::Pixyle
        .login(&client, &new.url(""), "moved@old.test", PASSWORD)
        .await;
    assert!(token.is_none());
    assert_eq!(
        (status, body),
        (401, json!({"error": "Invalid credentials"}))
    );
    assert!(found(&client, &new, "moved@old.test").await.is_empty());
    assert!(new.logs().contains("the legacy vendor could not be asked"));
}

/// A user deleted here stays deleted: its next login is not replayed to
/// the vendor, which would bring it back.
#[tokio::test]
async fn a_deleted_user_is_not_moved_over_again() {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vendor = Vendor::Pixyle;
    let old = legacy(vendor, old_dir.path());
    let (new, _token) = gateway(vendor, new_dir.path(), &old.url(vendor.login_path()), "");
    let client = client();
    let base = new.url("");
    let (_, _, token) = vendor
        .login(&client, &base, "moved@old.test", PASSWORD)
        .await;
    assert!(token.is_some());
    let users = found(&client, &new, "moved@old.test").await;
    let id = users[0]["id"].as_str().unwrap();
    let url = new.admin_url(&format!("/admin/v1/tenants/t/users/{id}"));
    let deleted = client
        .request(Method::DELETE, url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, body, token) = vendor
        .login(&client, &base, "moved@old.test", PASSWORD)
        .await;
    assert!(token.is_none(), "{status} {body}");
    assert_eq!(
        (status, body),
        (401, json!({"error": "Invalid credentials"}))
    );
    assert!(found(&client, &new, "moved@old.test").await.is_empty());
    // Another user of the vendor still moves.
    let (_, _, token) = vendor
        .login(&client, &base, "stays@old.test", PASSWORD)
        .await;
    assert!(token.is_some());
}
