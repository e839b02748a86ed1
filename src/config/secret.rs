//! Secrets are never required inline: a config names a file or an
//! environment variable that holds them.

use std::path::PathBuf;

use secrecy::SecretString;

/// Where a secret is read from, as written in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    /// Picks the one source given among `*_file` / `*_env`; `key` is the stem
    /// used in error messages (`secret` → `secret_file` / `secret_env`).
    pub fn pick(
        key: &str,
        file: Option<&PathBuf>,
        env: Option<&String>,
    ) -> Result<Option<Self>, String> {
        match (file, env) {
            (Some(_), Some(_)) => Err(format!("give only one of `{key}_file` and `{key}_env`")),
            (Some(file), None) => Ok(Some(Self::File(file.clone()))),
            (None, Some(env)) => Ok(Some(Self::Env(env.clone()))),
            (None, None) => Ok(None),
        }
    }

    /// Reads the secret; the error never contains the secret itself.
    pub fn read(&self) -> Result<SecretString, String> {
        match self {
            Self::File(path) => std::fs::read_to_string(path)
                .map(|text| SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| format!("cannot read `{}`: {e}", path.display())),
            Self::Env(var) => std::env::var(var)
                .map(SecretString::from)
                .map_err(|_| format!("environment variable `{var}` is not set")),
        }
    }

    /// The raw bytes of a file source (PEM keys), or the variable's value.
    pub fn read_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
            }
            Self::Env(var) => std::env::var(var)
                .map(String::into_bytes)
                .map_err(|_| format!("environment variable `{var}` is not set")),
        }
    }
}
