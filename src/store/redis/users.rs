//! The user directory: per tenant, a hash from id to record, a hash from
//! normalized email to id, and a sorted set of ids to page through.

use async_trait::async_trait;

use super::{RedisStore, decode, encode};
use crate::store::Persist;
use crate::store::{
    Created, DirectoryUser, StoreError, StoreResult, Users, UsersPage, normalize_email,
};

/// The tenant's keys: id -> record, email -> id, and the ids to page through.
const RECORDS: &str = "users";
const EMAILS: &str = "user-emails";
const IDS: &str = "user-ids";
/// Emails of deleted users, never migrated back.
const RETIRED: &str = "retired-emails";

impl RedisStore {
    /// The tenant's directory keys, in the order its scripts take them.
    fn directory(&self, tenant: &str) -> (String, String, String) {
        (
            self.keys.tenant(tenant, RECORDS),
            self.keys.tenant(tenant, EMAILS),
            self.keys.tenant(tenant, IDS),
        )
    }

    async fn user_record(
        &self,
        what: &'static str,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<DirectoryUser>> {
        let bytes: Option<Vec<u8>> = self
            .call(
                what,
                redis::cmd("HGET")
                    .arg(self.keys.tenant(tenant, RECORDS))
                    .arg(id)
                    .query_async(&mut self.conn()),
            )
            .await?;
        bytes.as_deref().map(decode).transpose()
    }
}

#[async_trait]
impl Users for RedisStore {
    async fn user_create(&self, tenant: &str, user: &DirectoryUser) -> StoreResult<bool> {
        let mut user = user.clone();
        user.email = normalize_email(&user.email);
        let added: u8 = self
            .invoke(
                "user_create",
                self.scripts
                    .user_create
                    .key(self.directory(tenant))
                    .arg(&user.id)
                    .arg(&user.email)
                    .arg(encode(&user)?),
            )
            .await?;
        Ok(added == 1)
    }

    async fn users_create_many(
        &self,
        tenant: &str,
        users: &[DirectoryUser],
    ) -> StoreResult<Vec<Created>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for the batch; the scripts run one after another.
        self.scripts
            .user_create
            .load_async(&mut self.conn())
            .await
            .map_err(|e| StoreError(format!("users_create_many: {e}")))?;
        let (records, emails, ids) = self.directory(tenant);
        let mut pipe = redis::pipe();
        for user in users {
            let email = normalize_email(&user.email);
            let record = encode(&DirectoryUser {
                email: email.clone(),
                ..user.clone()
            })?;
            pipe.cmd("EVALSHA")
                .arg(self.scripts.user_create.get_hash())
                .arg(3)
                .arg(&records)
                .arg(&emails)
                .arg(&ids)
                .arg(&user.id)
                .arg(&email)
                .arg(record);
        }
        let outcomes: Vec<u8> = self
            .call("users_create_many", pipe.query_async(&mut self.conn()))
            .await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                1 => Created::Created,
                2 => Created::IdTaken,
                _ => Created::EmailTaken,
            })
            .collect())
    }

    async fn user_get(&self, tenant: &str, id: &str) -> StoreResult<Option<DirectoryUser>> {
        self.user_record("user_get", tenant, id).await
    }

    async fn user_find(&self, tenant: &str, email: &str) -> StoreResult<Option<DirectoryUser>> {
        let id: Option<String> = self
            .call(
                "user_find",
                redis::cmd("HGET")
                    .arg(self.keys.tenant(tenant, EMAILS))
                    .arg(normalize_email(email))
                    .query_async(&mut self.conn()),
            )
            .await?;
        match id {
            // Deleted between the two reads: as good as never found.
            Some(id) => self.user_record("user_find", tenant, &id).await,
            None => Ok(None),
        }
    }

    async fn users_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<UsersPage> {
        let (records, ids) = (
            self.keys.tenant(tenant, RECORDS),
            self.keys.tenant(tenant, IDS),
        );
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let mut page: Vec<String> = self
            .call(
                "users_page",
                redis::cmd("ZRANGEBYLEX")
                    .arg(&ids)
                    .arg(&start)
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + 1)
                    .query_async(&mut self.conn()),
            )
            .await?;
        let more = page.len() > limit;
        page.truncate(limit);
        if page.is_empty() {
            return Ok(UsersPage {
                users: Vec::new(),
                next: None,
            });
        }
        let found: Vec<Option<Vec<u8>>> = self
            .call(
                "users_page",
                redis::cmd("HMGET")
                    .arg(&records)
                    .arg(&page)
                    .query_async(&mut self.conn()),
            )
            .await?;
        // An id whose record went meanwhile (a delete) is left out.
        let users = found
            .iter()
            .flatten()
            .map(|bytes| decode(bytes))
            .collect::<StoreResult<Vec<DirectoryUser>>>()?;
        let next = more.then(|| page.last().cloned()).flatten();
        Ok(UsersPage { users, next })
    }

    async fn user_update(&self, tenant: &str, user: &DirectoryUser) -> StoreResult<bool> {
        let replaced: u8 = self
            .invoke(
                "user_update",
                self.scripts
                    .user_update
                    .key(self.directory(tenant))
                    .arg(&user.id)
                    .arg(&user.email)
                    .arg(encode(user)?),
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn user_delete(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let deleted: u8 = self
            .invoke(
                "user_delete",
                self.scripts.user_delete.key(self.directory(tenant)).arg(id),
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn user_swap(
        &self,
        tenant: &str,
        expected: &DirectoryUser,
        new: &DirectoryUser,
        // Redis's own persistence decides for every write alike.
        _persist: Persist,
    ) -> StoreResult<bool> {
        if expected.id != new.id || expected.email != new.email {
            return Err(StoreError("a swap keeps the id and the email".into()));
        }
        let swapped: u8 = self
            .invoke(
                "user_swap",
                self.scripts
                    .user_swap
                    .key(self.keys.tenant(tenant, RECORDS))
                    .arg(&new.id)
                    .arg(encode(expected)?)
                    .arg(encode(new)?),
            )
            .await?;
        Ok(swapped == 1)
    }

    async fn email_retire(&self, tenant: &str, email: &str) -> StoreResult<()> {
        self.call(
            "email_retire",
            redis::cmd("SADD")
                .arg(self.keys.tenant(tenant, RETIRED))
                .arg(normalize_email(email))
                .query_async::<()>(&mut self.conn()),
        )
        .await
    }

    async fn email_retired(&self, tenant: &str, email: &str) -> StoreResult<bool> {
        self.call(
            "email_retired",
            redis::cmd("SISMEMBER")
                .arg(self.keys.tenant(tenant, RETIRED))
                .arg(normalize_email(email))
                .query_async(&mut self.conn()),
        )
        .await
    }
}
