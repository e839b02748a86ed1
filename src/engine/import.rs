//! Bulk import into a tenant's directory: JSON lines of the admin API's
//! create body, with `password_hash` only. A batch of lines is checked,
//! then created in one store step; a line whose email exists is left as
//! it is (`unchanged`), so importing a file twice imports it once. A
//! refused line never stops the others.

use serde::Deserialize;

use super::directory::{NewUser, stored_form, validate};
use super::tenant::Accounts;
use crate::store::{Created, DirectoryUser, Store, StoreResult};

/// Lines created in one store step.
const BATCH: usize = 1000;
/// Longest line read; a longer one is refused.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of an import, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    id: Option<String>,
    email: String,
    #[serde(default)]
    password_hash: Option<String>,
    /// Read only to refuse it by name.
    #[serde(default)]
    password: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    company_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// How many lines did what.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub imported: u64,
    pub unchanged: u64,
    pub refused: u64,
}

/// A refused line: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    pub line: u64,
    pub error: String,
}

/// Imports lines into one tenant's directory, a batch at a time: memory
/// holds one batch, whatever the length of the file.
pub struct Importer<'a> {
    store: &'a dyn Store,
    tenant: &'a str,
    /// The tenant file's users, whose emails and ids the directory may not take.
    accounts: &'a Accounts,
    batch: Vec<(u64, DirectoryUser)>,
    pub counts: ImportCounts,
}

impl<'a> Importer<'a> {
    pub fn new(store: &'a dyn Store, tenant: &'a str, accounts: &'a Accounts) -> Self {
        Self {
            store,
            tenant,
            accounts,
            batch: Vec::with_capacity(BATCH),
            counts: ImportCounts::default(),
        }
    }

    /// Takes line `number`; answers the lines refused so far that were not
    /// answered yet (this one, or those of a batch it completed). A blank
    /// line is skipped. Fails only when the store does.
    pub async fn line(&mut self, number: u64, text: &[u8]) -> StoreResult<Vec<Refused>> {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        match self.check(text) {
            Ok(user) => self.batch.push((number, user)),
            Err(error) => {
                self.counts.refused += 1;
                return Ok(vec![Refused {
                    line: number,
                    error,
                }]);
            }
        }
        if self.batch.len() < BATCH {
            return Ok(Vec::new());
        }
        self.flush().await
    }

    /// Creates what is still batched; answers the lines it refused.
    pub async fn finish(&mut self) -> StoreResult<Vec<Refused>> {
        self.flush().await
    }

    fn check(&self, text: &[u8]) -> Result<DirectoryUser, String> {
        if text.len() > MAX_LINE_BYTES {
            return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
        }
        let line: Line = serde_json::from_slice(text).map_err(|e| {
            // serde's message quotes unknown field names, never values.
            format!("not a user object ({})", without_position(&e))
        })?;
        let new = NewUser {
            id: line.id,
            email: line.email,
            password: line
                .password
                .map(|_| secrecy::SecretString::from(String::new())),
            password_hash: line.password_hash,
            roles: line.roles,
            active: line.active,
            email_verified: line.email_verified,
            company_id: line.company_id,
            import: true,
        };
        validate(self.accounts, &new).map_err(|e| e.to_string())?;
        let hash = new.password_hash.clone().unwrap_or_default();
        Ok(stored_form(new, hash))
    }

    async fn flush(&mut self) -> StoreResult<Vec<Refused>> {
        if self.batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = std::mem::take(&mut self.batch);
        let users: Vec<DirectoryUser> = batch.iter().map(|(_, user)| user.clone()).collect();
        let outcomes = self.store.users_create_many(self.tenant, &users).await?;
        let mut refused = Vec::new();
        for ((number, user), outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Created::Created => self.counts.imported += 1,
                Created::EmailTaken => self.counts.unchanged += 1,
                Created::IdTaken => {
                    self.counts.refused += 1;
                    refused.push(Refused {
                        line: *number,
                        error: format!("id: a user with id `{}` exists", user.id),
                    });
                }
            }
        }
        self.batch = batch;
        self.batch.clear();
        Ok(refused)
    }
}

/// Splits a body into numbered lines as it arrives, holding at most one
/// partial line (a line past [`MAX_LINE_BYTES`] keeps only its start,
/// enough to be refused as too long).
#[derive(Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// The partial line went past the limit: the rest of it is dropped.
    overlong: bool,
    number: u64,
}

impl Lines {
    /// The lines `chunk` completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut done = Vec::new();
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            self.take(&rest[..at]);
            done.push(self.end());
            rest = &rest[at + 1..];
        }
        self.take(rest);
        done
    }

    /// The last line, if the body did not end with a newline.
    pub fn rest(&mut self) -> Option<(u64, Vec<u8>)> {
        (!self.partial.is_empty() || self.overlong).then(|| self.end())
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = (MAX_LINE_BYTES + 1).saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.overlong |= bytes.len() > room;
    }

    fn end(&mut self) -> (u64, Vec<u8>) {
        self.number += 1;
        self.overlong = false;
        (self.number, std::mem::take(&mut self.partial))
    }
}

/// serde_json's message without its position (one line each) and without
/// the value it quotes, which could be a hash.
pub fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    match (text.starts_with("invalid "), text.find(", expected ")) {
        (true, Some(at)) => format!(
            "a field has the wrong type or value (expected {})",
            &text[at + 11..]
        ),
        _ => text.to_owned(),
    }
}
