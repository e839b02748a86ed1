//! Lockout counts failures, never attempts in flight; an inactive account's
//! right password is a failure; company logins count per address; sessions
//! per subject are bounded.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Setup, TestApp, pixyle_tenant, status_json};

const FIVE: &str = "[lockout]\nmax_failures = 5\nwindow = \"15m\"\nlock_for = \"15m\"";

async fn concurrently(app: &TestApp, n: usize, email: &str, password: &str) -> Vec<u16> {
    let logins = (0..n).map(|_| app.pixyle_login("/a", email, password));
    futures_util::future::join_all(logins)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect()
}

#[tokio::test]
async fn any_number_of_concurrent_correct_logins_all_succeed() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", FIVE))).await;
    let statuses = concurrently(&app, 12, "user@a.test", PASSWORD).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Nothing was counted against the account or the address.
    assert_eq!(app.pixyle_login("/a", "user@a.test", PASSWORD).await.0, 200);
    let statuses = concurrently(&app, 5, "user@a.test", "wrong").await;
    assert_eq!(statuses, [401; 5]);
}

#[tokio::test]
async fn exactly_max_failures_concurrent_wrong_logins_get_through() {
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", FIVE))).await;
    let statuses = concurrently(&app, 12, "user@a.test", "wrong").await;
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!((count(401), count(429)), (5, 7), "{statuses:?}");
    assert_eq!(app.pixyle_login("/a", "user@a.test", PASSWORD).await.0, 429);
}

#[tokio::test]
async fn a_right_password_on_an_inactive_account_counts_as_a_failure() {
    let lockout = "[lockout]\nmax_failures = 2";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", lockout))).await;
    for _ in 0..2 {
        let (status, body) = app.pixyle_login("/a", "inactive@a.test", PASSWORD).await;
        assert_eq!(
            (status, body),
            (401, json!({"error": "Account is not activated"}))
        );
    }
    assert_eq!(
        app.pixyle_login("/a", "inactive@a.test", PASSWORD).await.0,
        429
    );
}

const ACME: &str = "8b2f5a1e-4c1d-4e8a-9f3b-2d7c6e5a4b10";

async fn elyssa(extra: &str) -> TestApp {
    let tenant = format!(
        "id = \"el\"\ndialect = \"elyssa\"\npath_prefix = \"/el\"\nissuer = \"iss\"\naudience = \"aud\"\n\
         {extra}\n[[companies]]\nid = \"{ACME}\"\nroles = [\"USER\"]\n"
    );
    TestApp::spawn(Setup::new().tenant("el", tenant)).await
}

async fn company_login(app: &TestApp, company: &str) -> (u16, Value) {
    status_json(
        app.post_json("/el/auth/login", &json!({ "companyId": company }))
            .await,
    )
    .await
}

#[tokio::test]
async fn concurrent_company_logins_all_succeed_and_failed_ones_count_per_address() {
    let app = elyssa("[lockout]\nmax_failures = 3").await;
    let logins = (0..10).map(|_| company_login(&app, ACME));
    let statuses: Vec<u16> = futures_util::future::join_all(logins)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(statuses, [200; 10]);
    for _ in 0..3 {
        assert_eq!(company_login(&app, "no-such-company").await.0, 401);
    }
    assert_eq!(company_login(&app, ACME).await.0, 429);
}

#[tokio::test]
async fn sessions_per_subject_are_capped_and_the_oldest_is_revoked() {
    let tokens = "[tokens]\nmax_sessions = 3";
    let app = TestApp::spawn(Setup::new().tenant("a", pixyle_tenant("a", "/a", tokens))).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let (status, body) = app.pixyle_login("/a", "user@a.test", PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(body);
    }
    let access = |i: usize| sessions[i]["access_token"].as_str().unwrap().to_owned();
    let refresh = |i: usize| sessions[i]["refresh_token"].as_str().unwrap().to_owned();
    // The oldest session is over: its access and refresh tokens are refused.
    assert_eq!(app.verify("/a", &access(0)).await.status(), 401);
    let refreshed = app
        .client
        .post(app.url("/a/auth/v1/refresh"))
        .bearer_auth(refresh(0))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 401);
    // The three newest live on.
    for i in 1..4 {
        assert_eq!(
            app.verify("/a", &access(i)).await.status(),
            200,
            "session {i}"
        );
    }
}

#[tokio::test]
async fn company_sessions_are_capped_by_default_at_one_hundred() {
    let app = elyssa("").await;
    let mut first = None;
    for i in 0..101 {
        let (status, body) = company_login(&app, ACME).await;
        assert_eq!(status, 200, "login {i}: {body}");
        first.get_or_insert(body);
    }
    let access = first.unwrap()["accessToken"].as_str().unwrap().to_owned();
    let verify = app
        .client
        .get(app.url("/el/_polyauth/verify"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 401);
}

/// Sends a wrong-password login from `ip` through the trusted local proxy;
/// the connection is for the caller to reset.
async fn login_to_abandon(app: &TestApp, ip: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = app.url("").trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address.trim_end_matches('/'))
        .await
        .unwrap();
    let body = json!({"email": "user@a.test", "password": "wrong"}).to_string();
    let request = format!(
        "POST /a/auth/v1/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         x-forwarded-for: {ip}, 127.0.0.1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Closes with a reset (SO_LINGER 0), as a client that vanishes does.
fn reset(stream: tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size passed.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_login_gives_its_place_back() {
    // One hashing slot: the abandoned attempts queue for it, holding places.
    let setup = Setup::new()
        .server("[hashing]\nmax_concurrent = 1")
        .tenant("a", pixyle_tenant("a", "/a", FIVE));
    let app = TestApp::spawn(setup).await;
    let mut abandoned = Vec::new();
    for _ in 0..5 {
        abandoned.push(login_to_abandon(&app, "203.0.113.9").await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for stream in abandoned {
        reset(stream);
    }
    // Their places are free again: the owner logs in from elsewhere, and is
    // not left waiting for attempts that will never end.
    let status = app
        .client
        .post(app.url("/a/auth/v1/token"))
        .header("x-forwarded-for", "198.51.100.7, 127.0.0.1")
        .json(&json!({"email": "user@a.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
