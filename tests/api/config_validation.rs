//! Every configuration error is a startup error naming the file and the key.

use std::collections::HashMap;
use std::path::Path;

use polyauth::config::{ConfigError, Loaded};

use crate::helpers::{PASSWORD, Setup, password_hash, pixyle_tenant};

const PIXYLE_DIALECT: &str = include_str!("../../dialects/pixyle.toml");

/// Writes `setup` under `dir` and loads it.
fn load_in(dir: &Path, setup: &Setup) -> Result<Loaded, ConfigError> {
    polyauth::config::load(&setup.write(dir))
}

/// The error loading `setup` gives, in a fresh temp directory.
fn error_of(setup: Setup) -> ConfigError {
    let dir = tempfile::tempdir().unwrap();
    error_in(dir.path(), &setup)
}

/// The error loading `setup` under `dir` gives.
fn error_in(dir: &Path, setup: &Setup) -> ConfigError {
    load_in(dir, setup)
        .err()
        .expect("the configuration loaded, but it should have been rejected")
}

/// Asserts the error's file ends with `file`, its key is `key` and its
/// problem mentions `problem`.
fn assert_error(error: &ConfigError, file: &str, key: &str, problem: &str) {
    assert!(
        error.file.ends_with(file),
        "expected the file to end with `{file}`, got: {error}"
    );
    assert_eq!(error.key, key, "wrong key in: {error}");
    assert!(
        error.problem.contains(problem),
        "expected the problem to mention `{problem}`, got: {error}"
    );
}

/// A tenant `t` at `/t` with `extra` at the top of its file.
fn tenant_with(extra: &str) -> Setup {
    Setup::new().tenant("t", pixyle_tenant("t", "/t", extra))
}

/// A file under `dir` holding `contents`, as a TOML string literal of its path.
fn file_in(dir: &Path, name: &str, contents: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    format!("{:?}", path.display().to_string())
}

/// A secret of 40 bytes, above HS256's 32-byte minimum.
const SECRET_40: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCD";

#[test]
fn unknown_key_in_a_tenant_file_is_rejected() {
    let error = error_of(tenant_with(r#"colour = "red""#));
    assert_error(&error, "t.toml", "colour", "unknown field");
}

#[test]
fn unknown_key_in_the_server_file_is_rejected() {
    let error = error_of(tenant_with("").server(r#"colour = "red""#));
    assert_error(&error, "polyauth.toml", "colour", "unknown field");
}

#[test]
fn unknown_nested_key_in_a_tenant_file_is_rejected() {
    let error = error_of(tenant_with("[lockout]\nmax_fails = 3"));
    assert_error(&error, "t.toml", "lockout.max_fails", "unknown field");
}

#[test]
fn duplicate_tenant_id_is_rejected() {
    let error = error_of(
        Setup::new()
            .tenant("a", pixyle_tenant("same", "/a", ""))
            .tenant("b", pixyle_tenant("same", "/b", "")),
    );
    assert_error(&error, "b.toml", "id", "already the id of");
}

#[test]
fn duplicate_path_prefix_is_rejected() {
    let error = error_of(
        Setup::new()
            .tenant("a", pixyle_tenant("a", "/shared", ""))
            .tenant("b", pixyle_tenant("b", "/shared", "")),
    );
    assert_error(&error, "b.toml", "path_prefix", "already the prefix of");
}

#[test]
fn duplicate_host_is_rejected_case_insensitively() {
    let error = error_of(
        Setup::new()
            .tenant(
                "a",
                pixyle_tenant("a", "/a", r#"hosts = ["auth.example.test"]"#),
            )
            .tenant(
                "b",
                pixyle_tenant("b", "/b", r#"hosts = ["AUTH.Example.test"]"#),
            ),
    );
    assert_error(&error, "b.toml", "hosts[0]", "already a host of");
}

#[test]
fn unknown_dialect_is_rejected() {
    let tenant =
        pixyle_tenant("t", "/t", "").replace(r#"dialect = "pixyle""#, r#"dialect = "nope""#);
    let error = error_of(Setup::new().tenant("t", tenant));
    assert_error(&error, "t.toml", "dialect", "unknown dialect `nope`");
}

/// A tenant whose first user has `phc` as password hash.
fn tenant_with_first_hash(phc: &str) -> Setup {
    let tenant = pixyle_tenant("t", "/t", "").replacen(&password_hash(PASSWORD), phc, 1);
    Setup::new().tenant("t", tenant)
}

#[test]
fn malformed_phc_string_is_rejected() {
    let error = error_of(tenant_with_first_hash("not-a-phc-string"));
    assert_error(
        &error,
        "t.toml",
        "users[0].password_hash",
        "unknown password hash scheme",
    );
    let error = error_of(tenant_with_first_hash(
        "$argon2id$v=19$m=19456,t=2,p=1$not base64",
    ));
    assert_error(
        &error,
        "t.toml",
        "users[0].password_hash",
        "malformed PHC string",
    );
}

#[test]
fn phc_string_asking_more_than_a_gibibyte_is_rejected() {
    let error = error_of(tenant_with_first_hash(
        "$argon2id$v=19$m=2097152,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A",
    ));
    assert_error(&error, "t.toml", "users[0].password_hash", "1 GiB");
}

#[test]
fn a_scheme_polyauth_does_not_verify_is_rejected() {
    // SHA-512 crypt: argon2i/d, bcrypt, PBKDF2 and scrypt are accepted
    // (tests/api/foreign_hashes.rs), this is not.
    let error = error_of(tenant_with_first_hash(
        "$6$saltsalt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ));
    assert_error(
        &error,
        "t.toml",
        "users[0].password_hash",
        "unknown password hash scheme",
    );
}

#[test]
fn missing_private_key_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("keys/missing.pem");
    let setup = tenant_with(&format!(
        "[[keys]]\nkid = \"k1\"\nalg = \"EdDSA\"\nprivate_key_file = {:?}",
        missing.display().to_string()
    ));
    let error = error_in(dir.path(), &setup);
    assert_error(&error, "t.toml", "keys[0].private_key_file", "cannot read");
}

#[test]
fn hs256_key_with_unset_secret_variable_is_rejected() {
    let error = error_of(tenant_with(
        "[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_env = \"POLYAUTH_TEST_SECRET_THAT_IS_NEVER_SET\"",
    ));
    assert_error(
        &error,
        "t.toml",
        "keys[0].secret_env",
        "`POLYAUTH_TEST_SECRET_THAT_IS_NEVER_SET` is not set",
    );
}

#[test]
fn eddsa_key_file_that_is_not_pem_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(dir.path(), "not-a-key.pem", b"hello, I am not a key\n");
    let setup = tenant_with(&format!(
        "[[keys]]\nkid = \"k1\"\nalg = \"EdDSA\"\nprivate_key_file = {path}"
    ));
    let error = error_in(dir.path(), &setup);
    assert_error(
        &error,
        "t.toml",
        "keys[0].private_key_file",
        "not a PKCS#8 Ed25519 private key",
    );
}

#[test]
fn duplicate_kid_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let secret = file_in(dir.path(), "secret", SECRET_40);
    let key = format!("[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_file = {secret}\n");
    let error = error_in(dir.path(), &tenant_with(&format!("{key}{key}")));
    assert_error(&error, "t.toml", "keys[1].kid", "repeated");
}

#[test]
fn unparsable_duration_is_rejected() {
    let error = error_of(tenant_with("[tokens]\naccess_ttl = \"soon\""));
    assert_error(&error, "t.toml", "tokens.access_ttl", "not a duration");
}

#[test]
fn zero_duration_is_rejected() {
    let error = error_of(tenant_with("[tokens]\naccess_ttl = \"0s\""));
    assert_error(&error, "t.toml", "tokens.access_ttl", "longer than zero");
}

#[test]
fn connection_limits_and_body_timeout_default_and_refuse_zero() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_in(dir.path(), &tenant_with("")).unwrap_or_else(|e| panic!("{e}"));
    let server = &loaded.server;
    assert_eq!(server.body_timeout.0, std::time::Duration::from_secs(10));
    assert_eq!(
        (server.max_connections, server.max_connections_per_ip),
        (25_000, 256)
    );
    for key in ["max_connections", "max_connections_per_ip"] {
        let error = error_of(tenant_with("").server(&format!("{key} = 0")));
        assert_error(&error, "polyauth.toml", key, "above zero");
    }
    let error = error_of(tenant_with("").server("body_timeout = \"0s\""));
    assert_error(&error, "polyauth.toml", "body_timeout", "longer than zero");
}

#[test]
fn a_host_with_a_trailing_dot_is_rejected() {
    let error = error_of(tenant_with(r#"hosts = ["auth.t.test."]"#));
    assert_error(&error, "t.toml", "hosts[0]", "without its trailing dot");
}

/// The error for a tenant mounted at `prefix`.
fn prefix_error(prefix: &str) -> ConfigError {
    error_of(Setup::new().tenant("t", pixyle_tenant("t", prefix, "")))
}

#[test]
fn path_prefix_without_leading_slash_is_rejected() {
    let error = prefix_error("pixyle");
    assert_error(
        &error,
        "t.toml",
        "path_prefix",
        "`pixyle` must look like `/name`",
    );
}

#[test]
fn path_prefix_with_trailing_slash_is_rejected() {
    let error = prefix_error("/pixyle/");
    assert_error(
        &error,
        "t.toml",
        "path_prefix",
        "`/pixyle/` must look like `/name`",
    );
}

#[test]
fn reserved_path_prefix_is_rejected() {
    let error = prefix_error("/_polyauth");
    assert_error(
        &error,
        "t.toml",
        "path_prefix",
        "`/_polyauth` must look like `/name`",
    );
}

#[test]
fn tenant_without_path_prefix_or_hosts_is_rejected() {
    let tenant = pixyle_tenant("t", "/t", "").replace("path_prefix = \"/t\"\n", "");
    let error = error_of(Setup::new().tenant("t", tenant));
    assert_error(
        &error,
        "t.toml",
        "path_prefix",
        "give a `path_prefix`, `hosts`, or both",
    );
}

#[test]
fn duplicate_user_email_differing_only_in_case_is_rejected() {
    let tenant = format!(
        "{}\n[[users]]\nemail = \"USER@T.test\"\npassword_hash = \"{}\"\n",
        pixyle_tenant("t", "/t", ""),
        password_hash(PASSWORD)
    );
    let error = error_of(Setup::new().tenant("t", tenant));
    assert_error(&error, "t.toml", "users[3].email", "repeated");
}

#[test]
fn configuration_without_tenant_files_is_rejected() {
    let error = error_of(Setup::new());
    assert_error(&error, "tenants", "", "no tenant files");
}

#[test]
fn missing_server_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = tenant_with("").write(dir.path());
    std::fs::remove_file(config.join("polyauth.toml")).unwrap();
    let error = polyauth::config::load(&config)
        .err()
        .expect("loaded without polyauth.toml");
    assert_error(&error, "polyauth.toml", "", "file not found");
}

/// Loads `setup` with `env` as the whole environment.
fn load_with(dir: &Path, setup: &Setup, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    polyauth::config::load_with_env(&setup.write(dir), Some(env))
}

#[test]
fn the_hashing_pool_is_between_one_and_1024_threads() {
    for threads in [0, 1025] {
        let setup = tenant_with("").server(&format!("[hashing]\nmax_concurrent = {threads}"));
        let error = error_of(setup);
        assert_error(
            &error,
            "polyauth.toml",
            "hashing.max_concurrent",
            "between 1 and 1024",
        );
    }
}

#[test]
fn environment_overrides_the_server_file() {
    let dir = tempfile::tempdir().unwrap();
    let setup = tenant_with("").server("[hashing]\nmax_concurrent = 3");
    let loaded = load_with(
        dir.path(),
        &setup,
        &[("POLYAUTH__HASHING__MAX_CONCURRENT", "7")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.server.hashing.max_concurrent, 7);
}

#[test]
fn bad_environment_value_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let error = load_with(
        dir.path(),
        &tenant_with(""),
        &[("POLYAUTH__MAX_BODY_BYTES", "lots")],
    )
    .err()
    .expect("`lots` was accepted as a body size");
    assert_error(&error, "polyauth.toml", "max_body_bytes", "\"lots\"");
}

#[test]
fn hs256_secret_read_from_a_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let secret = file_in(dir.path(), "secret", SECRET_40);
    let setup = tenant_with(&format!(
        "[[keys]]\nkid = \"k1\"\nalg = \"HS256\"\nsecret_file = {secret}"
    ));
    let loaded = load_in(dir.path(), &setup).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.tenants.len(), 1);
    assert_eq!(loaded.tenants[0].keys.len(), 1);
    assert_eq!(loaded.tenants[0].keys[0].signing.kid, "k1");
}

#[test]
fn ed25519_pem_key_read_from_a_file_loads() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;

    let dir = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key.to_pkcs8_pem(Default::default()).unwrap();
    let path = file_in(dir.path(), "ed25519.pem", pem.as_bytes());
    let setup = tenant_with(&format!(
        "[[keys]]\nkid = \"ed-1\"\nalg = \"EdDSA\"\nprivate_key_file = {path}"
    ));
    let loaded = load_in(dir.path(), &setup).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.tenants.len(), 1);
    assert_eq!(loaded.tenants[0].keys.len(), 1);
    assert_eq!(loaded.tenants[0].keys[0].signing.kid, "ed-1");
}

#[test]
fn dialect_file_with_unknown_placeholder_is_rejected() {
    assert!(PIXYLE_DIALECT.contains("{{access_token}}"));
    let broken = PIXYLE_DIALECT
        .replace(r#"name = "pixyle""#, r#"name = "broken""#)
        .replacen("{{access_token}}", "{{pasword}}", 1);
    let error = error_of(tenant_with("").dialect("broken", &broken));
    assert!(
        error.file.ends_with("broken.toml"),
        "wrong file in: {error}"
    );
    assert!(
        error.key.starts_with("routes[0].success"),
        "wrong key in: {error}"
    );
    assert!(
        error.problem.contains("pasword"),
        "wrong problem in: {error}"
    );
}

#[test]
fn a_duration_beyond_ten_years_is_rejected() {
    let error = error_of(tenant_with("[lockout]\nlock_for = \"600000000y\""));
    assert_error(&error, "t.toml", "lockout.lock_for", "10 years");
}

#[test]
fn path_prefix_with_pattern_characters_is_rejected() {
    for prefix in ["/{tenant}", "/a*", "/a b", "/a%20"] {
        let error = prefix_error(prefix);
        assert_error(&error, "t.toml", "path_prefix", "must look like `/name`");
    }
}

#[test]
fn dialect_route_paths_with_pattern_characters_are_rejected() {
    for path in ["/auth/v1/{token", "/auth/{}", "/auth/*", "auth/v1/token"] {
        let broken = PIXYLE_DIALECT
            .replace(r#"name = "pixyle""#, r#"name = "broken""#)
            .replacen("\"/auth/v1/token\"", &format!("{path:?}"), 1);
        let error = error_of(tenant_with("").dialect("broken", &broken));
        assert_error(
            &error,
            "broken.toml",
            "routes[0].path",
            "must start with one `/`",
        );
    }
}

#[test]
fn dialect_routes_on_the_gateways_own_paths_are_rejected() {
    for path in [
        "/openapi.json",
        "/docs",
        "/docs/index.html",
        "/_polyauth/verify",
    ] {
        let broken = PIXYLE_DIALECT
            .replace(r#"name = "pixyle""#, r#"name = "broken""#)
            .replacen("\"/auth/v1/token\"", &format!("{path:?}"), 1);
        let error = error_of(tenant_with("").dialect("broken", &broken));
        assert_error(
            &error,
            "broken.toml",
            "routes[0].path",
            "belongs to the gateway",
        );
    }
}

#[test]
fn dialect_routes_and_prefixes_on_every_reserved_root_are_rejected() {
    for path in [
        "/oauth2/revoke",
        "/oauth2/introspect",
        "/.well-known/jwks.json",
        "/_polyauth",
    ] {
        let broken = PIXYLE_DIALECT
            .replace(r#"name = "pixyle""#, r#"name = "broken""#)
            .replacen("\"/auth/v1/token\"", &format!("{path:?}"), 1);
        let error = error_of(tenant_with("").dialect("broken", &broken));
        assert_error(
            &error,
            "broken.toml",
            "routes[0].path",
            "belongs to the gateway",
        );
    }
    // ... nor hold the gateway's own segment further down.
    for prefix in [
        "/oauth2",
        "/.well-known",
        "/docs",
        "/openapi.json",
        "/api/_polyauth/verify",
        "/a/_polyauth",
    ] {
        let error = prefix_error(prefix);
        assert_error(&error, "t.toml", "path_prefix", "must look like `/name`");
    }
    // A root names whole segments: a prefix that merely starts alike is free.
    for prefix in ["/oauth2x", "/docsite"] {
        let dir = tempfile::tempdir().unwrap();
        let config = Setup::new()
            .tenant("t", pixyle_tenant("t", prefix, ""))
            .write(dir.path());
        assert!(polyauth::config::load(&config).is_ok(), "{prefix}");
    }
}

/// A dialect may not add a claim under one of polyauth's own names: `dir`
/// marks a directory user's token, whose holder verify takes from it.
#[test]
fn a_dialect_claim_under_polyauths_own_names_is_rejected() {
    for claim in ["dir", "sid", "cid"] {
        let broken = PIXYLE_DIALECT.replace(r#"name = "pixyle""#, r#"name = "broken""#)
            + &format!("\n[claims]\n{claim} = true\n");
        let error = error_of(tenant_with("").dialect("broken", &broken));
        assert_error(
            &error,
            "broken.toml",
            &format!("claims.{claim}"),
            "one of polyauth's own claims",
        );
    }
}

const VISUALYZE_DIALECT: &str = include_str!("../../dialects/visualyze.toml");

/// The Visualyze dialect renamed `broken`, with `from` replaced by `to` once.
fn broken_visualyze(from: &str, to: &str) -> String {
    assert!(VISUALYZE_DIALECT.contains(from), "`{from}` not in the file");
    VISUALYZE_DIALECT
        .replace(r#"name = "visualyze""#, r#"name = "broken""#)
        .replacen(from, to, 1)
}

#[test]
fn route_path_naming_an_undeclared_param_is_rejected() {
    let broken = broken_visualyze(
        r#"path = "/api/{version}/user/logout""#,
        r#"path = "/api/{release}/user/logout""#,
    );
    let error = error_of(tenant_with("").dialect("broken", &broken));
    assert_error(
        &error,
        "broken.toml",
        "routes[1].path",
        "`{release}` in `/api/{release}/user/logout` is not declared in `[params]`",
    );
}

#[test]
fn route_path_naming_a_param_twice_is_rejected() {
    let broken = broken_visualyze(
        r#"path = "/api/{version}/user/login""#,
        r#"path = "/api/{version}/user/{version}""#,
    );
    let error = error_of(tenant_with("").dialect("broken", &broken));
    assert_error(&error, "broken.toml", "routes[0].path", "appears twice");
}

#[test]
fn param_inside_a_segment_is_rejected() {
    let broken = broken_visualyze(
        r#"path = "/api/{version}/user/login""#,
        r#"path = "/api/x{version}/user/login""#,
    );
    let error = error_of(tenant_with("").dialect("broken", &broken));
    assert_error(
        &error,
        "broken.toml",
        "routes[0].path",
        "must start with one `/`",
    );
}

#[test]
fn bad_param_regex_is_rejected_naming_the_param() {
    let cases = [
        ("v[0-9", "an unclosed `[`"),
        ("v(1", "an unclosed `(`"),
        ("v1)", "an unopened `)`"),
        (".*", "`.`"),
        ("[^/]+", "`^` in a class"),
        ("v[.-9]+", "the range `.-9`"),
        ("v\\\\d+", "`\\`"),
        ("v{1", "`{m,n}`"),
        ("(?P<x>v1)", "a group other than `(?:`"),
        ("", "nothing"),
        ("+v", "is not a valid regex"),
        ("v{3,1}", "is not a valid regex"),
    ];
    for (regex, problem) in cases {
        let broken = broken_visualyze(r#"version = "v[0-9]+""#, &format!("version = \"{regex}\""));
        let error = error_of(tenant_with("").dialect("broken", &broken));
        assert_error(&error, "broken.toml", "params.version", problem);
    }
}

#[test]
fn bad_param_name_is_rejected() {
    let broken = broken_visualyze(
        r#"version = "v[0-9]+""#,
        "version = \"v[0-9]+\"\n9lives = \"x\"",
    );
    let error = error_of(tenant_with("").dialect("broken", &broken));
    assert_error(&error, "broken.toml", "params.9lives", "a parameter name");
}

#[test]
fn a_dialect_file_may_declare_its_own_params() {
    let custom = broken_visualyze(
        r#"version = "v[0-9]+""#,
        r#"version = "(?:v[0-9]+|latest)""#,
    );
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_in(dir.path(), &tenant_with("").dialect("broken", &custom));
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

/// The error of a copy of the pixyle dialect named `broken`, changed by `edit`.
fn broken_dialect_error(edit: impl Fn(&str) -> String) -> ConfigError {
    let broken = edit(&PIXYLE_DIALECT.replace(r#"name = "pixyle""#, r#"name = "broken""#));
    error_of(tenant_with("").dialect("broken", &broken))
}

#[test]
fn dialect_with_an_unknown_encoding_is_rejected() {
    let error = broken_dialect_error(|d| {
        d.replacen(r#"encodings = ["json"]"#, r#"encodings = ["yaml"]"#, 1)
    });
    assert_error(&error, "broken.toml", "routes[0].encodings[0]", "yaml");
}

#[test]
fn dialect_with_a_duplicate_route_is_rejected() {
    let error =
        broken_dialect_error(|d| d.replacen("\"/auth/v1/refresh\"", "\"/auth/v1/token\"", 1));
    assert_error(
        &error,
        "broken.toml",
        "routes[2]",
        "duplicate route `POST /auth/v1/token`",
    );
}

#[test]
fn dialect_leaving_an_error_unanswered_is_rejected() {
    // Without a default, a login's `unavailable` has no answer.
    let error = broken_dialect_error(|d| {
        d.lines()
            .filter(|line| !line.starts_with("default = "))
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert_error(
        &error,
        "broken.toml",
        "routes[0].errors",
        "can fail with `malformed_request`",
    );
}

#[test]
fn a_short_api_key_secret_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_in(dir.path(), "short.secret", b"too short");
    let error = error_in(
        dir.path(),
        &tenant_with(&format!("api_key_secret_file = {path}")),
    );
    assert_error(&error, "t.toml", "api_key_secret_file", "at least 32 bytes");
}

#[test]
fn routes_equal_up_to_a_tolerated_trailing_slash_are_duplicates() {
    let elyssa = include_str!("../../dialects/elyssa.toml")
        .replace(r#"name = "elyssa""#, r#"name = "slashy""#)
        .replace("\"/auth/refresh/\"", "\"/auth/login\"");
    let error = error_of(tenant_with("").dialect("slashy", &elyssa));
    assert_error(
        &error,
        "slashy.toml",
        "routes[1]",
        "duplicate route `POST /auth/login`",
    );
}

/// `[store]` lines for Redis, with `extra` after them.
fn redis_store(extra: &str) -> Setup {
    let mut setup = tenant_with("");
    setup.store_extra = format!("kind = \"redis\"\n{extra}\n");
    setup
}

#[test]
fn a_redis_key_prefix_with_a_brace_is_rejected() {
    // A brace would move the `{tenant}` hash tag.
    let error = error_of(redis_store("key_prefix = \"a{b}\""));
    assert_error(&error, "polyauth.toml", "store.key_prefix", "`{`");
}

#[test]
fn a_redis_url_given_twice_is_rejected() {
    let error = error_of(redis_store(
        "url = \"redis://127.0.0.1/0\"\nurl_env = \"REDIS_URL\"",
    ));
    assert_error(&error, "polyauth.toml", "store.url", "only one");
}

#[test]
fn a_broken_redis_url_is_rejected_without_quoting_it() {
    let error = error_of(redis_store("url = \"postgres://:hunter2-secret@db/0\""));
    assert_error(
        &error,
        "polyauth.toml",
        "store.url",
        "not a usable Redis URL",
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn a_redis_timeout_above_thirty_seconds_is_rejected() {
    let error = error_of(redis_store("timeout = \"2m\""));
    assert_error(&error, "polyauth.toml", "store.timeout", "at most 30s");
}

#[test]
fn redis_settings_load_with_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_in(dir.path(), &redis_store("")).unwrap();
    let store = &loaded.server.store;
    assert_eq!(store.key_prefix, "polyauth");
    assert_eq!(store.timeout.0, std::time::Duration::from_secs(1));
    use secrecy::ExposeSecret;
    assert_eq!(
        store.redis_url().unwrap().expose_secret(),
        "redis://127.0.0.1:6379/0"
    );
}

#[test]
fn a_strict_route_answering_unknown_fields_with_an_empty_list_is_rejected() {
    // The strict copy of oauth-form without its `unknown_field` answer would
    // answer an unknown field with the missing-field list: `{"detail":[]}`.
    let strict = crate::oauth_form::strict_form();
    let broken: String = strict
        .lines()
        .filter(|line| !line.starts_with("unknown_field = "))
        .map(|line| format!("{line}\n"))
        .collect();
    let error = error_of(tenant_with("").dialect("strict-form", &broken));
    assert_error(
        &error,
        "strict-form.toml",
        "routes[0].errors",
        "answers `unknown_field` with `each_missing_field`, which would be an empty list",
    );
    // With it, the file loads.
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_in(dir.path(), &tenant_with("").dialect("strict-form", &strict));
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

#[test]
fn a_field_list_where_the_failure_has_no_fields_is_rejected() {
    let error = broken_dialect_error(|d| {
        d.replacen(
            "[errors]",
            "[errors]\nunknown_user = { status = 401, body = { detail = { each_missing_field = { loc = \"{{field}}\" } } } }",
            1,
        )
    });
    assert_error(
        &error,
        "broken.toml",
        "routes[0].errors",
        "answers `unknown_user` with `each_missing_field`",
    );
}

#[test]
fn an_accepted_field_with_a_bad_pattern_is_rejected() {
    let error = broken_dialect_error(|d| {
        d.replacen(
            "strict = true",
            "strict = true\naccepts = { grant_type = { pattern = \"^(password$\" } }",
            1,
        )
    });
    assert_error(
        &error,
        "broken.toml",
        "routes[0].accepts.grant_type.pattern",
        "is not a regex",
    );
}

fn tenant_with_roles(user_roles: &str, company_roles: &str) -> Setup {
    Setup::new().tenant(
        "t",
        format!(
            "{}\n[[users]]\nemail = \"roles@t.test\"\npassword_hash = \"{}\"\nroles = {user_roles}\n\
             [[companies]]\nid = \"c1\"\nroles = {company_roles}\n",
            pixyle_tenant("t", "/t", ""),
            password_hash(PASSWORD)
        ),
    )
}

#[test]
fn roles_that_are_not_header_safe_are_rejected() {
    for (roles, problem) in [
        (r#"["user", "ad,min"]"#, "must not hold `,`"),
        (r#"["user", "ad\nmin"]"#, "control characters"),
        (r#"["user", "ad\u007fmin"]"#, "control characters"),
        (r#"["user", "administrateur·rice"]"#, "must be ASCII"),
        (r#"["user", ""]"#, "must not be empty"),
    ] {
        // The fourth user of the file (three come with every pixyle tenant).
        let error = error_of(tenant_with_roles(roles, "[]"));
        assert_error(&error, "t.toml", "users[3].roles[1]", problem);
        let error = error_of(tenant_with_roles("[]", roles));
        assert_error(&error, "t.toml", "companies[0].roles[1]", problem);
    }
    let dir = tempfile::tempdir().unwrap();
    let fine = load_in(
        dir.path(),
        &tenant_with_roles(r#"["user", "billing:read", "team admin"]"#, r#"["client"]"#),
    );
    assert!(fine.is_ok(), "{:?}", fine.err());
}

#[test]
fn an_email_with_a_control_character_is_rejected() {
    let setup = Setup::new().tenant(
        "t",
        format!(
            "{}\n[[users]]\nemail = \"bad\\u0007@t.test\"\npassword_hash = \"{}\"\n",
            pixyle_tenant("t", "/t", ""),
            password_hash(PASSWORD)
        ),
    );
    assert_error(
        &error_of(setup),
        "t.toml",
        "users[3].email",
        "control character",
    );
}

/// A PEM RSA private key of `bits` bits, made by `openssl genrsa` in `dir`.
fn rsa_key(dir: &Path, bits: u32) -> String {
    let path = dir.join(format!("rsa-{bits}.pem"));
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-out")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    format!("{:?}", path.display().to_string())
}

#[test]
fn an_rsa_key_under_2048_bits_is_rejected_and_2048_loads() {
    let dir = tempfile::tempdir().unwrap();
    let short = rsa_key(dir.path(), 1024);
    let setup = tenant_with(&format!(
        "[[keys]]\nkid = \"rsa-1\"\nalg = \"RS256\"\nprivate_key_file = {short}"
    ));
    assert_error(
        &error_in(dir.path(), &setup),
        "t.toml",
        "keys[0].private_key_file",
        "at least 2048 bits; this one has 1024",
    );
    let long = rsa_key(dir.path(), 2048);
    let setup = tenant_with(&format!(
        "[[keys]]\nkid = \"rsa-2\"\nalg = \"RS256\"\nprivate_key_file = {long}"
    ));
    let loaded = load_in(dir.path(), &setup).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.tenants[0].keys[0].signing.kid, "rsa-2");
}
