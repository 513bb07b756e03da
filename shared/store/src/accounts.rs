//! Accounts, their API tokens and console sessions, and the sign-in
//! events every gateway counts against the limits.

use dirsync_core::UnixMillis;

use crate::dialect::Dialect;
use crate::row::{Row, query};
use crate::{AccountRecord, Result, SessionRecord, SignInLimits, StoreError, TokenRecord};

type Pool<D> = sqlx::Pool<D>;

pub(crate) async fn ensure_account<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    now: UnixMillis,
) -> Result<()> {
    query("INSERT INTO accounts (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(account_id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

fn account_of(mut r: Row) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.take("id")?,
        time_zone: r.take("time_zone")?,
        schedule: r.take("schedule")?,
        ldap_sign_in: r.get("ldap_sign_in")?,
    })
}

pub(crate) async fn get_account<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
) -> Result<AccountRecord> {
    let row = query("SELECT id, time_zone, schedule, ldap_sign_in FROM accounts WHERE id = $1")
        .bind(account_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account {account_id:?}")))?;
    account_of(row)
}

/// Every account.
pub(crate) async fn accounts<D: Dialect>(pool: &Pool<D>) -> Result<Vec<AccountRecord>> {
    query("SELECT id, time_zone, schedule, ldap_sign_in FROM accounts")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(account_of)
        .collect()
}

pub(crate) async fn update_account<D: Dialect>(
    pool: &Pool<D>,
    account: &AccountRecord,
    now: UnixMillis,
) -> Result<()> {
    query(
        "INSERT INTO accounts (id, created_at, time_zone, schedule, ldap_sign_in) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET time_zone = excluded.time_zone, \
         schedule = excluded.schedule, ldap_sign_in = excluded.ldap_sign_in",
    )
    .bind(&account.id)
    .bind(now)
    .bind(&account.time_zone)
    .bind(&account.schedule)
    .bind(account.ldap_sign_in)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn create_token<D: Dialect>(pool: &Pool<D>, t: &TokenRecord) -> Result<()> {
    query(
        "INSERT INTO api_tokens (id, account_id, name, secret_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.id)
    .bind(&t.account_id)
    .bind(&t.name)
    .bind(&t.secret_hash)
    .bind(t.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

fn token_of(mut r: Row) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.take("id")?,
        account_id: r.take("account_id")?,
        name: r.take("name")?,
        secret_hash: r.take("secret_hash")?,
        created_at: r.get("created_at")?,
        revoked_at: r.get("revoked_at")?,
    })
}

pub(crate) async fn token<D: Dialect>(pool: &Pool<D>, id: &str) -> Result<Option<TokenRecord>> {
    query("SELECT * FROM api_tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(token_of)
        .transpose()
}

pub(crate) async fn list_tokens<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
) -> Result<Vec<TokenRecord>> {
    query("SELECT * FROM api_tokens WHERE account_id = $1 ORDER BY created_at, id")
        .bind(account_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(token_of)
        .collect()
}

pub(crate) async fn revoke_token<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    id: &str,
    now: UnixMillis,
) -> Result<()> {
    let revoked = query(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $3) \
         WHERE account_id = $1 AND id = $2",
    )
    .bind(account_id)
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?;
    if revoked == 0 {
        return Err(StoreError::NotFound(format!("token {id:?}")));
    }
    Ok(())
}

pub(crate) async fn create_session<D: Dialect>(pool: &Pool<D>, t: &SessionRecord) -> Result<()> {
    query(
        "INSERT INTO console_sessions \
         (id, secret_hash, account_id, token_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&t.id)
    .bind(&t.secret_hash)
    .bind(&t.account_id)
    .bind(&t.token_id)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn session<D: Dialect>(pool: &Pool<D>, id: &str) -> Result<Option<SessionRecord>> {
    let Some(mut r) = query("SELECT * FROM console_sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(SessionRecord {
        id: r.take("id")?,
        secret_hash: r.take("secret_hash")?,
        account_id: r.take("account_id")?,
        token_id: r.take("token_id")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        ended_at: r.get("ended_at")?,
    }))
}

pub(crate) async fn end_session<D: Dialect>(
    pool: &Pool<D>,
    id: &str,
    now: UnixMillis,
) -> Result<()> {
    query("UPDATE console_sessions SET ended_at = COALESCE(ended_at, $2) WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// See [`crate::DirectoryStore::admit_sign_in`]. One statement at a time,
/// no transaction (SQLite's one writer is never held across a read). A
/// refused attempt only reads: a spraying client costs no writes. An
/// admitted one is counted, then the limits read again with it, and it is
/// taken back when gateways racing at the limit went over.
pub(crate) async fn admit_sign_in<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    address: &str,
    now: UnixMillis,
    limits: &SignInLimits,
) -> Result<bool> {
    let within = |strict: bool| async move {
        let row = query(
            "SELECT \
               (SELECT CAST(COUNT(*) AS BIGINT) FROM sign_in_events WHERE account_id = $1 \
                  AND address = $2 AND failed AND at > $3) AS failures, \
               (SELECT CAST(COUNT(*) AS BIGINT) FROM sign_in_events WHERE account_id = $1 \
                  AND NOT failed AND at > $4) AS attempts",
        )
        .bind(account_id)
        .bind(address)
        .bind(now - limits.address_window_ms)
        .bind(now - limits.account_window_ms)
        .fetch_one(pool)
        .await?;
        let failures: i64 = row.get("failures")?;
        let attempts: i64 = row.get("attempts")?;
        let room = if strict { 0 } else { 1 };
        Ok::<bool, StoreError>(
            failures < i64::from(limits.address_failures)
                && attempts + room <= i64::from(limits.account_attempts),
        )
    };
    if !within(false).await? {
        return Ok(false);
    }
    let oldest = now - limits.address_window_ms.max(limits.account_window_ms);
    query("DELETE FROM sign_in_events WHERE account_id = $1 AND at < $2")
        .bind(account_id)
        .bind(oldest)
        .execute(pool)
        .await?;
    let id = uuid::Uuid::new_v4().to_string();
    query(
        "INSERT INTO sign_in_events (id, account_id, address, failed, at) \
         VALUES ($1, $2, $3, FALSE, $4)",
    )
    .bind(&id)
    .bind(account_id)
    .bind(address)
    .bind(now)
    .execute(pool)
    .await?;
    if within(true).await? {
        return Ok(true);
    }
    query("DELETE FROM sign_in_events WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await?;
    Ok(false)
}

pub(crate) async fn sign_in_failed<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    address: &str,
    now: UnixMillis,
) -> Result<()> {
    query(
        "INSERT INTO sign_in_events (id, account_id, address, failed, at) \
         VALUES ($1, $2, $3, TRUE, $4)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(account_id)
    .bind(address)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn sign_in_succeeded<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    address: &str,
) -> Result<()> {
    query("DELETE FROM sign_in_events WHERE account_id = $1 AND address = $2 AND failed")
        .bind(account_id)
        .bind(address)
        .execute(pool)
        .await?;
    Ok(())
}
