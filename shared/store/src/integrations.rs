//! Integrations: their settings (stored as JSON) and bind passwords
//! (stored sealed: key id, nonce and ciphertext, never in clear), and the
//! key rotation's view of them.

use std::collections::HashMap;

use dirsync_core::{IntegrationSettings, SealedSecret};

use crate::dialect::Dialect;
use crate::json;
use crate::row::{Row, query};
use crate::{AccountRecord, IntegrationRecord, Result, StoreError, accounts};

type Pool<D> = sqlx::Pool<D>;

/// An integration as a row of `integrations` holds it.
fn integration_of(mut r: Row) -> Result<IntegrationRecord> {
    let settings: String = r.take("settings")?;
    let settings: IntegrationSettings = serde_json::from_str(&settings)
        .map_err(|e| StoreError::Corrupt(format!("integration settings: {e}")))?;
    let key_id: Option<String> = r.take("password_key_id")?;
    let nonce: Option<Vec<u8>> = r.take("password_nonce")?;
    let ciphertext: Option<Vec<u8>> = r.take("password_ciphertext")?;
    Ok(IntegrationRecord {
        id: r.take("id")?,
        account_id: r.take("account_id")?,
        settings,
        password: match (key_id, nonce, ciphertext) {
            (Some(key_id), Some(nonce), Some(ciphertext)) => Some(SealedSecret {
                key_id,
                nonce,
                ciphertext,
            }),
            _ => None,
        },
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn integrations_of(rows: Vec<Row>) -> Result<Vec<IntegrationRecord>> {
    rows.into_iter().map(integration_of).collect()
}

/// A unique violation on an integration's name, said as such.
fn name_taken(rec: &IntegrationRecord) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "the account already has an integration named {:?}",
            rec.settings.name
        )),
        other => other,
    }
}

pub(crate) async fn create_integration<D: Dialect>(
    pool: &Pool<D>,
    rec: &IntegrationRecord,
) -> Result<()> {
    let pw = rec.password.as_ref();
    query(
        "INSERT INTO integrations (id, account_id, name, settings, password_key_id, \
         password_nonce, password_ciphertext, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&rec.id)
    .bind(&rec.account_id)
    .bind(&rec.settings.name)
    .bind(json(&rec.settings))
    .bind(pw.map(|p| &p.key_id))
    .bind(pw.map(|p| &p.nonce))
    .bind(pw.map(|p| &p.ciphertext))
    .bind(rec.created_at)
    .bind(rec.updated_at)
    .execute(pool)
    .await
    .map_err(name_taken(rec))?;
    Ok(())
}

pub(crate) async fn get_integration<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    id_or_name: &str,
) -> Result<IntegrationRecord> {
    let row = query(
        "SELECT * FROM integrations WHERE account_id = $1 AND (id = $2 OR name = $2) \
         ORDER BY (id = $2) DESC LIMIT 1",
    )
    .bind(account_id)
    .bind(id_or_name)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("integration {id_or_name:?}")))?;
    integration_of(row)
}

pub(crate) async fn list_integrations<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
) -> Result<Vec<IntegrationRecord>> {
    integrations_of(
        query("SELECT * FROM integrations WHERE account_id = $1 ORDER BY name")
            .bind(account_id)
            .fetch_all(pool)
            .await?,
    )
}

pub(crate) async fn update_integration<D: Dialect>(
    pool: &Pool<D>,
    rec: &IntegrationRecord,
) -> Result<()> {
    // Settings that change what a run reads or how it derives records make
    // the next run a full one: a delta applies changes to records derived
    // under the old settings.
    let before = query("SELECT settings FROM integrations WHERE account_id = $1 AND id = $2")
        .bind(&rec.account_id)
        .bind(&rec.id)
        .fetch_optional(pool)
        .await?
        .map(|mut r| r.take::<String>("settings"))
        .transpose()?;
    let rescope = before
        .and_then(|b| serde_json::from_str::<IntegrationSettings>(&b).ok())
        .is_none_or(|b| !b.reads_as(&rec.settings));
    if rescope {
        query("DELETE FROM sync_cursors WHERE account_id = $1 AND integration_id = $2")
            .bind(&rec.account_id)
            .bind(&rec.id)
            .execute(pool)
            .await?;
    }
    let pw = rec.password.as_ref();
    let updated = query(
        "UPDATE integrations SET name = $3, settings = $4, password_key_id = $5, \
         password_nonce = $6, password_ciphertext = $7, updated_at = $8 \
         WHERE account_id = $1 AND id = $2",
    )
    .bind(&rec.account_id)
    .bind(&rec.id)
    .bind(&rec.settings.name)
    .bind(json(&rec.settings))
    .bind(pw.map(|p| &p.key_id))
    .bind(pw.map(|p| &p.nonce))
    .bind(pw.map(|p| &p.ciphertext))
    .bind(rec.updated_at)
    .execute(pool)
    .await
    .map_err(name_taken(rec))?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("integration {:?}", rec.id)));
    }
    Ok(())
}

/// Every integration of every account, with its account.
pub(crate) async fn scheduled_integrations<D: Dialect>(
    pool: &Pool<D>,
) -> Result<Vec<(IntegrationRecord, AccountRecord)>> {
    let integrations = integrations_of(
        query("SELECT * FROM integrations ORDER BY account_id, name")
            .fetch_all(pool)
            .await?,
    )?;
    let accounts: HashMap<String, AccountRecord> = accounts::accounts(pool)
        .await?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    Ok(integrations
        .into_iter()
        .filter_map(|i| {
            let a = accounts.get(&i.account_id)?.clone();
            Some((i, a))
        })
        .collect())
}

pub(crate) async fn password_key_ids<D: Dialect>(pool: &Pool<D>) -> Result<Vec<String>> {
    query("SELECT DISTINCT password_key_id FROM integrations WHERE password_key_id IS NOT NULL")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|mut r| r.take("password_key_id"))
        .collect()
}

pub(crate) async fn password_key_counts<D: Dialect>(pool: &Pool<D>) -> Result<Vec<(String, u64)>> {
    query(
        "SELECT password_key_id, COUNT(*) AS n FROM integrations \
         WHERE password_key_id IS NOT NULL GROUP BY password_key_id ORDER BY password_key_id",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|mut r| {
        let n: i64 = r.get("n")?;
        Ok((
            r.take("password_key_id")?,
            u64::try_from(n).unwrap_or_default(),
        ))
    })
    .collect()
}

pub(crate) async fn passwords_not_sealed_with<D: Dialect>(
    pool: &Pool<D>,
    key_id: &str,
) -> Result<Vec<IntegrationRecord>> {
    integrations_of(
        query(
            "SELECT * FROM integrations WHERE password_key_id IS NOT NULL \
             AND password_key_id <> $1 ORDER BY account_id, id",
        )
        .bind(key_id)
        .fetch_all(pool)
        .await?,
    )
}

pub(crate) async fn reseal_password<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
    from: &SealedSecret,
    to: &SealedSecret,
) -> Result<bool> {
    let resealed = query(
        "UPDATE integrations SET password_key_id = $3, password_nonce = $4, \
         password_ciphertext = $5 WHERE account_id = $1 AND id = $2 \
         AND password_key_id = $6 AND password_nonce = $7",
    )
    .bind(account_id)
    .bind(integration_id)
    .bind(&to.key_id)
    .bind(&to.nonce)
    .bind(&to.ciphertext)
    .bind(&from.key_id)
    .bind(&from.nonce)
    .execute(pool)
    .await?;
    Ok(resealed == 1)
}
