//! The command line: `serve`, `check`, `hash-password`, `hash-secret`, `openapi`,
//! `keys rotate`.

mod import;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::engine::{keys, password};
use crate::{Application, config, store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "polyauth",
    version,
    about = "Multi-tenant authentication gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve {
        /// Directory holding polyauth.toml and tenants/.
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Load and validate the configuration, every tenant and every dialect.
    Check {
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Read a password from stdin and print an argon2id PHC string.
    HashPassword,
    /// Read a client secret from stdin (one trailing newline is dropped) and
    /// print its `sha256:` hash for a tenant's `[[clients]]`.
    HashSecret {
        /// Make a new random secret instead, and print it with its hash.
        #[arg(long)]
        generate: bool,
    },
    /// Write the OpenAPI document of every dialect to `<out>/<dialect>.json`,
    /// and the admin API's to `<out>/admin.json`.
    Openapi {
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
        /// Also document the dialect files of this directory.
        #[arg(long)]
        dialects_dir: Option<PathBuf>,
    },
    /// Manage tenants' signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage tenants' user directories.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Import users into a tenant's directory from a file of JSON lines,
    /// one admin-API create body each with `password_hash` (never
    /// `password`). A line whose email exists is left as it is, so running
    /// a file twice imports it once; a refused line is reported by number
    /// and never stops the others. Exits 0 when no line was refused, 1 when
    /// some was, 2 on a usage or configuration error. With the embedded
    /// store, stop the gateway first; with Redis it may be running.
    Import {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// Print the summary as JSON (with the first 1,000 refused lines).
        #[arg(long)]
        json: bool,
        /// The file of JSON lines; `-` reads stdin.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Give a tenant with no `[[keys]]` a new generated signing key.
    ///
    /// The new key signs from now on; the previous one keeps verifying
    /// until the longest token it signed has expired (the tenant's longest
    /// token lifetime plus 30 s), then leaves the JWKS. On the redis store
    /// every running replica follows within a second. The embedded store
    /// serves one process: stop the server first, start it again after.
    Rotate {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
}

/// Runs the parsed command: the process's exit status (an error exits 1).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    run_command(cli).await.map(|ok| match ok {
        Outcome::Done => 0,
        Outcome::Failed => 1,
        Outcome::Usage => 2,
    })
}

/// How a command ended.
enum Outcome {
    Done,
    /// A check failed, or a line was refused.
    Failed,
    /// Wrong arguments or configuration.
    Usage,
}

impl From<bool> for Outcome {
    fn from(ok: bool) -> Self {
        if ok { Self::Done } else { Self::Failed }
    }
}

async fn run_command(cli: Cli) -> anyhow::Result<Outcome> {
    let done = match cli.command.unwrap_or(Command::Serve {
        config: PathBuf::from("config"),
    }) {
        Command::Serve { config } => serve(config).await.map(|()| true),
        Command::Check { config } => Ok(check(&config)),
        Command::Openapi { out, dialects_dir } => {
            write_openapi(&out, dialects_dir.as_deref())?;
            Ok(true)
        }
        Command::Keys {
            command: KeysCommand::Rotate { tenant, config },
        } => rotate_key(&config, &tenant).await.map(|()| true),
        Command::HashPassword => {
            let password = read_password()?;
            println!(
                "{}",
                password::hash_password(&password, password::default_params())?
            );
            Ok(true)
        }
        Command::HashSecret { generate } => {
            hash_secret(generate)?;
            Ok(true)
        }
        Command::Users {
            command:
                UsersCommand::Import {
                    tenant,
                    config,
                    json,
                    file,
                },
        } => return import::run(&config, &tenant, &file, json).await,
    };
    done.map(Outcome::from)
}

/// `hash-secret`: the hash of the secret on stdin, or a new secret and its
/// hash. Only a generated secret is ever printed (it exists nowhere else).
fn hash_secret(generate: bool) -> anyhow::Result<()> {
    use crate::engine::clients::{MIN_SECRET_BYTES, SecretHash};
    if generate {
        use base64::Engine as _;
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        println!("secret: {secret}");
        println!("secret_hash: {}", SecretHash::of(secret.as_bytes()));
        eprintln!(
            "Give `secret` to the client (it is not kept anywhere); put `secret_hash` in the tenant's [[clients]]."
        );
        return Ok(());
    }
    let text = read_stdin_secret("client secret: ")?;
    let text = text.expose_secret();
    let secret = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(text);
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_BYTES,
        "a client secret must be at least {MIN_SECRET_BYTES} bytes (this one is {}); `polyauth hash-secret --generate` makes one",
        secret.len()
    );
    println!("{}", SecretHash::of(secret.as_bytes()));
    Ok(())
}

async fn serve(dir: PathBuf) -> anyhow::Result<()> {
    let loaded = config::load(&dir)?;
    // Held to the end: dropping it writes the lines still queued.
    let _logs = telemetry::init(loaded.server.log_format);
    crate::http::limits::make_room_for(loaded.server.max_connections);
    let tenants: Vec<String> = loaded
        .tenants
        .iter()
        .map(|t| format!("{} ({})", t.config.id, t.config.dialect))
        .collect();
    let app = Application::build(loaded).await?;
    tracing::info!(
        port = app.port(),
        admin_port = app.admin_port(),
        tenants = %tenants.join(", "),
        "polyauth serving"
    );
    app.run_until_stopped().await?;
    tracing::info!("polyauth stopped");
    Ok(())
}

fn write_openapi(
    out: &std::path::Path,
    dialects_dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let dialects = crate::dialect::Dialects::load(dialects_dir)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for name in dialects.names() {
        let Some(dialect) = dialects.get(name) else {
            continue;
        };
        let path = out.join(format!("{name}.json"));
        std::fs::write(&path, crate::openapi::to_json(dialect))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    let path = out.join("admin.json");
    std::fs::write(&path, crate::http::admin::users::document_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// The loaded tenant `tenant_id`, or why there is none (naming the ones
/// there are).
fn tenant_of<'a>(
    loaded: &'a config::Loaded,
    dir: &std::path::Path,
    tenant_id: &str,
) -> Result<&'a config::LoadedTenant, String> {
    loaded
        .tenants
        .iter()
        .find(|t| t.config.id == tenant_id)
        .ok_or_else(|| {
            let ids: Vec<&str> = loaded
                .tenants
                .iter()
                .map(|t| t.config.id.as_str())
                .collect();
            format!(
                "no tenant `{tenant_id}` in {} (tenants: {})",
                dir.join("tenants").display(),
                ids.join(", ")
            )
        })
}

/// `keys rotate`: a new generated signing key for `tenant_id`, in the
/// store the configuration names.
async fn rotate_key(dir: &std::path::Path, tenant_id: &str) -> anyhow::Result<()> {
    let loaded = config::load(dir)?;
    let tenant = tenant_of(&loaded, dir, tenant_id).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        tenant.keys.is_empty(),
        "tenant `{tenant_id}` signs with the [[keys]] of {}: rotate them there \
         (put the new key first, give the old one a `retire_after`)",
        tenant.file
    );
    let settings = loaded.server.store.settings().map_err(anyhow::Error::msg)?;
    let embedded = matches!(settings, store::StoreSettings::Embedded { .. });
    let store = store::open(settings).await.map_err(|error| {
        match error.downcast_ref::<store::StoreInUse>() {
            Some(in_use) => anyhow::anyhow!(
                "{in_use}: stop the server, rotate, then start it again; \
                 rotating while serving needs the redis store"
            ),
            None => error,
        }
    })?;
    let rotation = keys::rotate(store.as_ref(), tenant_id, &tenant.lifetimes).await?;
    println!(
        "tenant {tenant_id}: key {} signs from now on",
        rotation.signing
    );
    for (kid, until) in &rotation.verifying {
        let until = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*until);
        println!(
            "  key {kid} verifies the tokens it signed until {}, then leaves the JWKS",
            humantime::format_rfc3339_seconds(until)
        );
    }
    println!(
        "{}",
        if embedded {
            "  start the server: it signs with the new key"
        } else {
            "  every replica on the store follows within a second"
        }
    );
    Ok(())
}

fn check(dir: &std::path::Path) -> bool {
    match config::load(dir) {
        Ok(loaded) => {
            for tenant in &loaded.tenants {
                let config = &tenant.config;
                let mount = match (&config.path_prefix, config.hosts.is_empty()) {
                    (Some(prefix), true) => prefix.clone(),
                    (Some(prefix), false) => format!("{prefix}, hosts {}", config.hosts.join(" ")),
                    (None, _) => format!("hosts {}", config.hosts.join(" ")),
                };
                let cors = match (&tenant.cors, &config.cors_origins) {
                    (None, _) => "no CORS".to_string(),
                    (Some(origins), Some(_)) => format!("CORS {}", origins.describe()),
                    (Some(origins), None) => {
                        format!("CORS {} (dialect default)", origins.describe())
                    }
                };
                let upstream = tenant.upstream.as_ref().map_or(String::new(), |u| {
                    format!(" · proxies to {}://{}{}", u.scheme, u.authority, u.base)
                });
                println!(
                    "ok  tenant {} · dialect {} · {} · {} users · {} companies · {} · {cors}{upstream}",
                    config.id,
                    config.dialect,
                    mount,
                    config.users.len(),
                    config.companies.len(),
                    configured_keys(&tenant.keys)
                );
            }
            for name in loaded.dialects.names() {
                if let Some(dialect) = loaded.dialects.get(name) {
                    println!("ok  dialect {}", dialect.describe());
                }
            }
            let server = &loaded.server;
            match (&server.admin_token_file, &server.admin_token_env) {
                (Some(file), _) => println!(
                    "ok  admin API on at {}/admin/v1 (token from {})",
                    server.admin_listen,
                    file.display()
                ),
                (None, Some(var)) => println!(
                    "ok  admin API on at {}/admin/v1 (token from ${var})",
                    server.admin_listen
                ),
                (None, None) => {
                    println!("ok  admin API off (no admin_token_file or admin_token_env)")
                }
            }
            true
        }
        Err(error) => {
            eprintln!("error: {error}");
            false
        }
    }
}

/// How a tenant's keys are described by `check`.
fn configured_keys(keys: &[crate::engine::keys::KeyPair]) -> String {
    if keys.is_empty() {
        return "generated signing key".into();
    }
    let now = crate::store::unix_now();
    match keys.iter().filter(|key| key.retired(now)).count() {
        0 => format!("{} configured keys", keys.len()),
        retired => format!("{} configured keys, {retired} retired", keys.len()),
    }
}

/// One line from stdin, without echo when it is a terminal.
fn read_password() -> anyhow::Result<SecretString> {
    let text = read_stdin_secret("password: ")?;
    let password = text.expose_secret().lines().next().unwrap_or_default();
    let password = SecretString::from(password.to_owned());
    anyhow::ensure!(!password.expose_secret().is_empty(), "empty password");
    Ok(password)
}

/// The line typed on a terminal (without echo, prompted on it), else all
/// of stdin as it was piped in.
fn read_stdin_secret(prompt: &str) -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let typed = rpassword::prompt_password(prompt).context("cannot read from the terminal")?;
        return Ok(SecretString::from(typed));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read stdin (it must be UTF-8 text)")?;
    Ok(SecretString::from(text))
}
