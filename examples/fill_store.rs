//! Fills a store with live revocations or sessions through the crate's own
//! store API, for the scale and size benchmarks of `bench/run.py` (filling
//! over HTTP would need one argon2 login per token). Prints one JSON line.
//!
//! cargo run --release --example fill_store -- --backend embedded --path data/s.redb \
//!     --tenant bench --what revocations --count 1000000 [--offset 0] [--ttl-secs 86400]
//! cargo run --release --example fill_store -- --backend redis --url redis://127.0.0.1:6379/0 \
//!     [--prefix polyauth] --tenant bench --what sessions --count 5000
//!
//! Revocations go to the embedded store in commits of `--batch` entries
//! (default 50,000), and to Redis through `revoke_token` from `--concurrency`
//! tasks at once (default 64). Sessions are written as a login writes them:
//! `family_start` and then `sessions_add`, one subject per session.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use polyauth::store::{EmbeddedStore, RedisSettings, RedisStore, Revocations, Sessions, unix_now};
use secrecy::SecretString;

struct Args {
    backend: String,
    path: Option<PathBuf>,
    url: Option<String>,
    prefix: String,
    tenant: String,
    what: String,
    count: u64,
    offset: u64,
    ttl_secs: u64,
    batch: u64,
    concurrency: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backend: String::new(),
        path: None,
        url: None,
        prefix: "polyauth".into(),
        tenant: String::new(),
        what: String::new(),
        count: 0,
        offset: 0,
        ttl_secs: 86_400,
        batch: 50_000,
        concurrency: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--backend" => args.backend = value,
            "--path" => args.path = Some(value.into()),
            "--url" => args.url = Some(value),
            "--prefix" => args.prefix = value,
            "--tenant" => args.tenant = value,
            "--what" => args.what = value,
            "--count" => args.count = number(&value)?,
            "--offset" => args.offset = number(&value)?,
            "--ttl-secs" => args.ttl_secs = number(&value)?,
            "--batch" => args.batch = number(&value)?.max(1),
            "--concurrency" => args.concurrency = number(&value)?.max(1),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.tenant.is_empty() {
        return Err("--tenant is required".into());
    }
    if !matches!(args.what.as_str(), "revocations" | "sessions") {
        return Err("--what must be revocations or sessions".into());
    }
    Ok(args)
}

/// Names of the `n`-th revoked token id and session.
fn jti(n: u64) -> String {
    format!("bench-revoked-{n:010}")
}

fn family(n: u64) -> String {
    format!("bench-family-{n:010}")
}

async fn fill_embedded(args: &Args, store: EmbeddedStore, expires_at: u64) -> Result<(), String> {
    let end = args.offset + args.count;
    match args.what.as_str() {
        "revocations" => {
            let mut next = args.offset;
            while next < end {
                let upto = (next + args.batch).min(end);
                let items = (next..upto).map(|n| (jti(n), expires_at)).collect();
                store
                    .revoke_tokens_in_one_commit(&args.tenant, items)
                    .await
                    .map_err(|e| e.to_string())?;
                next = upto;
            }
        }
        _ => {
            for n in args.offset..end {
                add_session(&store, &args.tenant, n, expires_at).await?;
            }
        }
    }
    Ok(())
}

/// Writes what one login writes for session `n`.
async fn add_session<S: Sessions + Sync>(
    store: &S,
    tenant: &str,
    n: u64,
    expires_at: u64,
) -> Result<(), String> {
    let (family, subject) = (family(n), format!("bench-subject-{n:010}"));
    store
        .family_start(tenant, &family, &format!("{family}-refresh"), expires_at)
        .await
        .map_err(|e| e.to_string())?;
    store
        .sessions_add(tenant, &subject, &family, expires_at, 100)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn fill_redis(args: &Args, store: RedisStore, expires_at: u64) -> Result<(), String> {
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency {
        let store = Arc::clone(&store);
        let (tenant, what) = (args.tenant.clone(), args.what.clone());
        let (offset, end, step) = (
            args.offset + worker,
            args.offset + args.count,
            args.concurrency,
        );
        tasks.spawn(async move {
            let mut n = offset;
            while n < end {
                if what == "revocations" {
                    store
                        .revoke_token(&tenant, &jti(n), expires_at)
                        .await
                        .map_err(|e| e.to_string())?;
                } else {
                    add_session(store.as_ref(), &tenant, n, expires_at).await?;
                }
                n += step;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let expires_at = unix_now() + args.ttl_secs;
    let started = Instant::now();
    match args.backend.as_str() {
        "embedded" => {
            let path = args.path.clone().ok_or("--path is required")?;
            let store = EmbeddedStore::open(&path).map_err(|e| format!("{e:#}"))?;
            fill_embedded(&args, store, expires_at).await?;
        }
        "redis" => {
            let url = args.url.clone().ok_or("--url is required")?;
            let store = RedisStore::connect(RedisSettings {
                url: SecretString::from(url),
                key_prefix: args.prefix.clone(),
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            })
            .await
            .map_err(|e| format!("{e:#}"))?;
            fill_redis(&args, store, expires_at).await?;
        }
        other => return Err(format!("unknown --backend {other:?} (embedded or redis)")),
    }
    println!(
        "{}",
        serde_json::json!({
            "backend": args.backend,
            "what": args.what,
            "offset": args.offset,
            "count": args.count,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("fill_store: {problem}");
            std::process::exit(2);
        }
    };
    if let Err(problem) = run(args).await {
        eprintln!("fill_store: {problem}");
        std::process::exit(1);
    }
}
