//! The tenant's user directory as operators change it (the admin API and
//! `users import`): users created with a password or a hash from
//! elsewhere, changed, deleted, logged out everywhere and unlocked.
//!
//! Ending a user's access revokes every session the store lists for it
//! (its access and refresh tokens all name one) and moves its API key on
//! a generation; on Redis the revocations reach every replica within its
//! staleness bound, as any logout does.

use secrecy::SecretString;

use super::hashes;
use super::login::MAX_EMAIL_LEN;
use super::tenant::Accounts;
use super::{Engine, EngineError, Tenant, password};
use crate::store::{DirectoryUser, Persist, StoreError, normalize_email, unix_now};

/// Longest password accepted from an operator (bytes); longer ones are
/// refused rather than hashed.
const MAX_PASSWORD_LEN: usize = 1024;
/// Longest user id, role, or company id.
const MAX_NAME_LEN: usize = 256;
/// Most roles a user may hold.
const MAX_ROLES: usize = 64;

/// Why a directory operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The input breaks a rule: `field` names the offending part.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The email (or id) is taken, in the directory or the tenant's file.
    #[error("{0}")]
    Conflict(String),
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for DirectoryError {
    fn from(error: StoreError) -> Self {
        Self::Engine(error.into())
    }
}

type DirectoryResult<T> = Result<T, DirectoryError>;

fn invalid(field: &'static str, message: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid {
        field,
        message: message.into(),
    }
}

/// A user to create. Exactly one of `password` and `password_hash`.
#[derive(Default)]
pub struct NewUser {
    /// Its subject; without it, a new random one. Keeping the vendor's ids
    /// keeps the subjects other systems know the users by.
    pub id: Option<String>,
    pub email: String,
    pub password: Option<SecretString>,
    /// In any scheme `hashes` reads, within its cost bounds.
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub email_verified: bool,
    pub company_id: Option<String>,
    /// Part of an import, which takes hashes only.
    pub import: bool,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChange {
    pub roles: Option<Vec<String>>,
    pub active: Option<bool>,
    pub email_verified: Option<bool>,
    /// `Some(None)` removes the user's company.
    pub company_id: Option<Option<String>>,
    pub password: Option<SecretString>,
}

impl Engine {
    /// Creates a directory user; its password, if given, is hashed with the
    /// tenant's argon2id parameters on the hashing threads.
    pub async fn user_create(
        &self,
        tenant: &Tenant,
        new: NewUser,
    ) -> DirectoryResult<DirectoryUser> {
        let user = self.new_user(tenant, new).await?;
        if !self.store.user_create(&tenant.id, &user).await? {
            return Err(self.taken(tenant, &user).await?);
        }
        Ok(user)
    }

    pub async fn user_get(&self, tenant: &Tenant, id: &str) -> DirectoryResult<DirectoryUser> {
        self.stored_user(tenant, id).await
    }

    /// The directory user with `email`, in any case.
    pub async fn user_find(
        &self,
        tenant: &Tenant,
        email: &str,
    ) -> DirectoryResult<Option<DirectoryUser>> {
        Ok(self.store.user_find(&tenant.id, email).await?)
    }

    /// Up to `limit` users after id `after`, and the id to go on from.
    pub async fn users_list(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> DirectoryResult<crate::store::UsersPage> {
        Ok(self.store.users_page(&tenant.id, after, limit).await?)
    }

    /// Changes a user. Deactivating it or giving it a new password ends
    /// every session it has, and its API key.
    pub async fn user_change(
        &self,
        tenant: &Tenant,
        id: &str,
        change: UserChange,
    ) -> DirectoryResult<DirectoryUser> {
        if let Some(roles) = &change.roles {
            validate_roles(roles)?;
        }
        if let Some(Some(company)) = &change.company_id {
            validate_name("company_id", company)?;
        }
        let new_hash = match change.password {
            Some(password) => Some(self.hash_new_password(tenant, password).await?),
            None => None,
        };
        // Asked to end its access, it ends whatever the user's state: a
        // retry after a failure half way still ends it.
        let end_sessions = change.active == Some(false) || new_hash.is_some();
        let user = self
            .change_stored(tenant, id, |user| {
                user.roles = change.roles.clone().unwrap_or_else(|| user.roles.clone());
                user.active = change.active.unwrap_or(user.active);
                user.email_verified = change.email_verified.unwrap_or(user.email_verified);
                if let Some(company) = &change.company_id {
                    user.company_id = company.clone();
                }
                if let Some(hash) = &new_hash {
                    user.password_hash = hash.clone();
                }
                if end_sessions {
                    user.sessions_epoch += 1;
                }
            })
            .await?;
        // The user is written before its sessions end: a login that read
        // it before keeps none it started meanwhile (see `login`).
        if end_sessions {
            self.end_access(tenant, &user.id).await?;
        }
        Ok(user)
    }

    /// Deletes a user: every session, token and API key of it dies, and
    /// lazy migration never brings its email back from the vendor.
    pub async fn user_delete(&self, tenant: &Tenant, id: &str) -> DirectoryResult<()> {
        let Some(user) = self.store.user_get(&tenant.id, id).await? else {
            // Gone already (a retry after a failure half way): what it had
            // is ended all the same, unless the id is the file's.
            if !tenant.accounts.has_id(id) {
                self.end_access(tenant, id).await?;
            }
            return Err(DirectoryError::NotFound);
        };
        self.store.email_retire(&tenant.id, &user.email).await?;
        self.store.user_delete(&tenant.id, id).await?;
        self.end_access(tenant, id).await?;
        Ok(())
    }

    /// Logout everywhere: every session of the user ends, with its API key.
    pub async fn user_logout(&self, tenant: &Tenant, id: &str) -> DirectoryResult<()> {
        self.change_stored(tenant, id, |user| user.sessions_epoch += 1)
            .await?;
        self.end_access(tenant, id).await?;
        Ok(())
    }

    /// Applies `change` to the stored user and writes it back if no other
    /// change came in between (else reads it again and reapplies): two
    /// operators' changes never undo each other, nor a login's.
    async fn change_stored(
        &self,
        tenant: &Tenant,
        id: &str,
        change: impl Fn(&mut DirectoryUser),
    ) -> DirectoryResult<DirectoryUser> {
        loop {
            let stored = self.stored_user(tenant, id).await?;
            let mut changed = stored.clone();
            change(&mut changed);
            if self
                .store
                .user_swap(&tenant.id, &stored, &changed, Persist::Now)
                .await?
            {
                return Ok(changed);
            }
        }
    }

    /// Clears the lockout of the user's account; the counters of the
    /// addresses it was tried from stay.
    pub async fn user_unlock(&self, tenant: &Tenant, id: &str) -> DirectoryResult<()> {
        let user = self.stored_user(tenant, id).await?;
        let counter = super::login::account_key(&user.email);
        self.store.lockout_clear(&tenant.id, &counter).await?;
        Ok(())
    }

    /// Revokes every session the store lists for `subject` (each token
    /// names its session) and moves its API key on a generation.
    pub(super) async fn end_access(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> Result<(), EngineError> {
        for (family, end) in self.store.sessions_of(&tenant.id, subject).await? {
            self.revoke_family(tenant, &family, end).await?;
        }
        if let Some((_, record)) = self.store.api_key_of(&tenant.id, subject).await? {
            self.issue_api_key(tenant, subject, record.generation + 1)
                .await?;
        }
        Ok(())
    }

    async fn stored_user(&self, tenant: &Tenant, id: &str) -> DirectoryResult<DirectoryUser> {
        self.store
            .user_get(&tenant.id, id)
            .await?
            .ok_or(DirectoryError::NotFound)
    }

    /// A checked user, its password hashed, ready to store.
    async fn new_user(&self, tenant: &Tenant, mut new: NewUser) -> DirectoryResult<DirectoryUser> {
        validate(&tenant.accounts, &new)?;
        let password_hash = match (new.password.take(), new.password_hash.take()) {
            (Some(password), None) => self.hash_new_password(tenant, password).await?,
            (None, Some(hash)) => hash,
            _ => unreachable!("validate admits exactly one"),
        };
        Ok(stored_form(new, password_hash))
    }

    /// The tenant's argon2id hash of an operator's password.
    async fn hash_new_password(
        &self,
        tenant: &Tenant,
        password: SecretString,
    ) -> DirectoryResult<String> {
        use secrecy::ExposeSecret;
        let length = password.expose_secret().len();
        if length == 0 || length > MAX_PASSWORD_LEN {
            return Err(invalid(
                "password",
                format!("must be 1 to {MAX_PASSWORD_LEN} bytes"),
            ));
        }
        self.hasher
            .hash(password, tenant.accounts.params.clone())
            .await
            .map_err(|error| DirectoryError::Engine(hash_failed(error)))
    }

    /// Why a create found its email or id taken.
    async fn taken(
        &self,
        tenant: &Tenant,
        user: &DirectoryUser,
    ) -> DirectoryResult<DirectoryError> {
        Ok(match self.store.user_find(&tenant.id, &user.email).await? {
            Some(_) => {
                DirectoryError::Conflict(format!("a user with email `{}` exists", user.email))
            }
            None => DirectoryError::Conflict(format!("a user with id `{}` exists", user.id)),
        })
    }
}

/// `new` as the store keeps it, with `password_hash`.
pub(super) fn stored_form(new: NewUser, password_hash: String) -> DirectoryUser {
    DirectoryUser {
        id: new.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        email: normalize_email(&new.email),
        password_hash,
        roles: new.roles,
        active: new.active,
        email_verified: new.email_verified,
        company_id: new.company_id,
        created_at: unix_now(),
        last_login_at: None,
        sessions_epoch: 0,
    }
}

pub(super) fn hash_failed(error: password::HashError) -> EngineError {
    match error {
        password::HashError::Busy(_) => EngineError::Unavailable(error.to_string()),
        password::HashError::Failed(_) => EngineError::Internal(error.into()),
    }
}

/// The rules a new user keeps, checked before anything is hashed or stored.
pub(super) fn validate(accounts: &Accounts, new: &NewUser) -> DirectoryResult<()> {
    let email = normalize_email(&new.email);
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(invalid(
            "email",
            format!("must be 1 to {MAX_EMAIL_LEN} characters"),
        ));
    }
    let (local, domain) = email.split_once('@').unwrap_or_default();
    if local.is_empty() || domain.is_empty() || email.chars().any(char::is_whitespace) {
        return Err(invalid("email", "is not an email address"));
    }
    if accounts.user_by_email(&email).is_some() {
        return Err(DirectoryError::Conflict(format!(
            "a user with email `{email}` is in the tenant's file"
        )));
    }
    if let Some(id) = &new.id {
        validate_name("id", id)?;
        if accounts.has_id(id) {
            return Err(DirectoryError::Conflict(format!(
                "a user with id `{id}` is in the tenant's file"
            )));
        }
    }
    match (&new.password, &new.password_hash) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "password",
                "give `password` or `password_hash`, not both",
            ));
        }
        (None, None) => {
            return Err(invalid("password", "give `password` or `password_hash`"));
        }
        (None, Some(hash)) => {
            hashes::check(hash).map_err(|reason| invalid("password_hash", reason))?;
        }
        (Some(_), None) if new.import => {
            return Err(invalid(
                "password",
                "an import carries `password_hash`, never a password",
            ));
        }
        (Some(_), None) => {}
    }
    validate_roles(&new.roles)?;
    if let Some(company) = &new.company_id {
        validate_name("company_id", company)?;
    }
    Ok(())
}

fn validate_roles(roles: &[String]) -> DirectoryResult<()> {
    if roles.len() > MAX_ROLES {
        return Err(invalid("roles", format!("at most {MAX_ROLES} roles")));
    }
    roles
        .iter()
        .try_for_each(|role| validate_name("roles", role))
}

fn validate_name(field: &'static str, value: &str) -> DirectoryResult<()> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} characters, none a control character"),
        ));
    }
    Ok(())
}
