//! The command line: `serve`, `check`, `hash-password`, `openapi`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::engine::password;
use crate::{Application, config, telemetry};

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
    /// Write the OpenAPI document of every dialect to `<out>/<dialect>.json`.
    Openapi {
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
        /// Also document the dialect files of this directory.
        #[arg(long)]
        dialects_dir: Option<PathBuf>,
    },
}

/// Runs the parsed command; `Ok(false)` means a check failed.
pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command.unwrap_or(Command::Serve {
        config: PathBuf::from("config"),
    }) {
        Command::Serve { config } => serve(config).await.map(|()| true),
        Command::Check { config } => Ok(check(&config)),
        Command::Openapi { out, dialects_dir } => {
            write_openapi(&out, dialects_dir.as_deref())?;
            Ok(true)
        }
        Command::HashPassword => {
            let password = read_password()?;
            println!(
                "{}",
                password::hash_password(&password, password::default_params())?
            );
            Ok(true)
        }
    }
}

async fn serve(dir: PathBuf) -> anyhow::Result<()> {
    let loaded = config::load(&dir)?;
    telemetry::init(loaded.server.log_format);
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
                let upstream = tenant.upstream.as_ref().map_or(String::new(), |u| {
                    format!(" · proxies to {}://{}{}", u.scheme, u.authority, u.base)
                });
                println!(
                    "ok  tenant {} · dialect {} · {} · {} users · {} companies · {}{upstream}",
                    config.id,
                    config.dialect,
                    mount,
                    config.users.len(),
                    config.companies.len(),
                    if tenant.keys.is_empty() {
                        "generated signing key".to_string()
                    } else {
                        format!("{} configured keys", tenant.keys.len())
                    }
                );
            }
            for name in loaded.dialects.names() {
                if let Some(dialect) = loaded.dialects.get(name) {
                    println!("ok  dialect {}", dialect.describe());
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

/// One line from stdin, without echo when it is a terminal.
fn read_password() -> anyhow::Result<SecretString> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password: ").context("cannot read the password")?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        text.lines().next().unwrap_or_default().to_owned()
    };
    let password = SecretString::from(password);
    anyhow::ensure!(!password.expose_secret().is_empty(), "empty password");
    Ok(password)
}
