//! The user directory: one table from tenant and id to the user, one from
//! tenant and normalized email to the id. Both change in one transaction.

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::End::{Abort, Commit};
use super::{
    DbError, EmbeddedStore, RETIRED_EMAILS, SEP, USER_EMAILS, USERS, get_json, key, put_json,
};
use crate::store::{
    Created, DirectoryUser, Persist, StoreResult, Users, UsersPage, normalize_email,
};

/// Adds `user` (its email normalized) unless its email or id is taken.
fn insert(txn: &WriteTransaction, tenant: &str, user: &DirectoryUser) -> Result<Created, DbError> {
    let (user_k, email_k) = (key(tenant, &user.id), key(tenant, &user.email));
    let mut emails = txn.open_table(USER_EMAILS)?;
    if emails.get(email_k.as_str())?.is_some() {
        return Ok(Created::EmailTaken);
    }
    if txn.open_table(USERS)?.get(user_k.as_str())?.is_some() {
        return Ok(Created::IdTaken);
    }
    emails.insert(email_k.as_str(), user.id.as_str())?;
    put_json(txn, USERS, &user_k, user)?;
    Ok(Created::Created)
}

#[async_trait]
impl Users for EmbeddedStore {
    async fn user_create(&self, tenant: &str, user: &DirectoryUser) -> StoreResult<bool> {
        let mut user = user.clone();
        user.email = normalize_email(&user.email);
        let tenant = tenant.to_owned();
        self.write("user_create", move |txn| {
            Ok(match insert(txn, &tenant, &user)? {
                Created::Created => Commit(true),
                _ => Abort(false),
            })
        })
        .await
    }

    async fn users_create_many(
        &self,
        tenant: &str,
        users: &[DirectoryUser],
    ) -> StoreResult<Vec<Created>> {
        let users: Vec<DirectoryUser> = users
            .iter()
            .map(|user| DirectoryUser {
                email: normalize_email(&user.email),
                ..user.clone()
            })
            .collect();
        let tenant = tenant.to_owned();
        // One commit for the batch.
        self.write("users_create_many", move |txn| {
            let mut outcomes = Vec::with_capacity(users.len());
            for user in &users {
                let outcome = insert(txn, &tenant, user)?;
                outcomes.push(outcome);
            }
            match outcomes.contains(&Created::Created) {
                true => Ok(Commit(outcomes)),
                false => Ok(Abort(outcomes)),
            }
        })
        .await
    }

    async fn user_get(&self, tenant: &str, id: &str) -> StoreResult<Option<DirectoryUser>> {
        let user_k = key(tenant, id);
        self.read("user_get", move |txn| {
            get_json(&txn.open_table(USERS)?, &user_k)
        })
        .await
    }

    async fn user_find(&self, tenant: &str, email: &str) -> StoreResult<Option<DirectoryUser>> {
        let email_k = key(tenant, &normalize_email(email));
        let tenant = tenant.to_owned();
        self.read("user_find", move |txn| {
            let emails = txn.open_table(USER_EMAILS)?;
            let Some(id) = emails.get(email_k.as_str())? else {
                return Ok(None);
            };
            get_json(&txn.open_table(USERS)?, &key(&tenant, id.value()))
        })
        .await
    }

    async fn users_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<UsersPage> {
        // The tenant's keys are `tenant SEP id`: all below `tenant (SEP + 1)`.
        let end = format!("{tenant}{}", char::from(SEP as u8 + 1));
        let start = key(tenant, after.unwrap_or(""));
        let skip_start = after.is_some();
        self.read("users_page", move |txn| {
            let table = txn.open_table(USERS)?;
            let mut users = Vec::new();
            let mut more = false;
            for entry in table.range(start.as_str()..end.as_str())? {
                let (k, bytes) = entry?;
                if skip_start && k.value() == start {
                    continue;
                }
                if users.len() == limit {
                    more = true;
                    break;
                }
                users.push(super::decode::<DirectoryUser>(bytes.value())?);
            }
            let next = more.then(|| users.last().map(|u| u.id.clone())).flatten();
            Ok(UsersPage { users, next })
        })
        .await
    }

    async fn user_update(&self, tenant: &str, user: &DirectoryUser) -> StoreResult<bool> {
        let user = user.clone();
        let user_k = key(tenant, &user.id);
        self.write("user_update", move |txn| {
            let stored: Option<DirectoryUser> = get_json(&txn.open_table(USERS)?, &user_k)?;
            let Some(stored) = stored else {
                return Ok(Abort(false));
            };
            if stored.email != user.email {
                return Err(DbError("a user's email cannot change".into()));
            }
            put_json(txn, USERS, &user_k, &user)?;
            Ok(Commit(true))
        })
        .await
    }

    async fn user_delete(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let user_k = key(tenant, id);
        let tenant = tenant.to_owned();
        self.write("user_delete", move |txn| {
            let mut users = txn.open_table(USERS)?;
            let removed: Option<DirectoryUser> = match users.remove(user_k.as_str())? {
                Some(bytes) => Some(super::decode(bytes.value())?),
                None => None,
            };
            drop(users);
            let Some(user) = removed else {
                return Ok(Abort(false));
            };
            txn.open_table(USER_EMAILS)?
                .remove(key(&tenant, &user.email).as_str())?;
            Ok(Commit(true))
        })
        .await
    }

    async fn user_swap(
        &self,
        tenant: &str,
        expected: &DirectoryUser,
        new: &DirectoryUser,
        persist: Persist,
    ) -> StoreResult<bool> {
        let (expected, new) = (expected.clone(), new.clone());
        let user_k = key(tenant, &new.id);
        if expected.id != new.id || expected.email != new.email {
            return Err(crate::store::StoreError(
                "a swap keeps the id and the email".into(),
            ));
        }
        let swap = move |txn: &WriteTransaction| {
            let stored: Option<DirectoryUser> = get_json(&txn.open_table(USERS)?, &user_k)?;
            if stored.as_ref() != Some(&expected) {
                return Ok(Abort(false));
            }
            put_json(txn, USERS, &user_k, &new)?;
            Ok(Commit(true))
        };
        match persist {
            Persist::Now => self.write("user_swap", swap).await,
            // Like the login's session (see `sync`): durable within a second.
            Persist::Soon => self.write_unsynced("user_swap", swap).await,
        }
    }

    async fn email_retire(&self, tenant: &str, email: &str) -> StoreResult<()> {
        let email_k = key(tenant, &normalize_email(email));
        self.write("email_retire", move |txn| {
            txn.open_table(RETIRED_EMAILS)?
                .insert(email_k.as_str(), ())?;
            Ok(Commit(()))
        })
        .await
    }

    async fn email_retired(&self, tenant: &str, email: &str) -> StoreResult<bool> {
        let email_k = key(tenant, &normalize_email(email));
        self.read("email_retired", move |txn| {
            Ok(txn
                .open_table(RETIRED_EMAILS)?
                .get(email_k.as_str())?
                .is_some())
        })
        .await
    }
}
