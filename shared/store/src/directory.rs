//! The directory as the API reads it: objects by kind and name, an
//! address's owner, and the change log.

use dirsync_core::ObjectKind;
use dirsync_core::change::{Change, Operation};

use crate::corrupt;
use crate::dialect::Dialect;
use crate::row::{Row, query};
use crate::{ChangeRecord, ObjectQuery, Result, StoreError, StoredObject};

type Pool<D> = sqlx::Pool<D>;

/// An object as a row of `objects` (integration_id, record, managed)
/// holds it.
pub(crate) fn object_of(mut r: Row) -> Result<StoredObject> {
    let record: String = r.take("record")?;
    Ok(StoredObject {
        integration_id: r.take("integration_id")?,
        record: serde_json::from_str(&record).map_err(|e| corrupt("directory object", e))?,
        managed: r.get("managed")?,
    })
}

/// `text` with LIKE's wildcards and its escape character escaped (`\\`).
pub(crate) fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) async fn list_objects<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    objects: &ObjectQuery,
) -> Result<Vec<StoredObject>> {
    let mut q = query("SELECT integration_id, record, managed FROM objects WHERE account_id = ")
        .push_bind(account_id)
        .push(" AND kind = ")
        .push_bind(objects.kind.as_str());
    let search = objects.search.trim().to_lowercase();
    if !search.is_empty() {
        // Addresses are stored lower-cased; display names and DNs are
        // folded (`Dialect::FOLD`). The DN only when the text looks like
        // part of one (`ou=london`): a scan of every DN would double the
        // search's cost.
        let pattern = format!("%{}%", like_escaped(&search));
        q = q
            .push(" AND (")
            .push(D::FOLD)
            .push("(display_name) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR primary_address LIKE ")
            .push_bind(pattern.clone());
        if search.contains('=') {
            q = q
                .push(" ESCAPE '\\' OR ")
                .push(D::FOLD)
                .push("(dn) LIKE ")
                .push_bind(pattern);
        }
        q = q.push(" ESCAPE '\\')");
    }
    if !objects.anchors.is_empty() {
        q = q.push(" AND anchor").push_in(&objects.anchors);
    }
    if let Some((name, anchor)) = &objects.after {
        q = q
            .push(" AND (display_name > ")
            .push_bind(name)
            .push(" OR (display_name = ")
            .push_bind(name)
            .push(" AND anchor > ")
            .push_bind(anchor)
            .push("))");
    }
    q = q.push(" ORDER BY display_name, anchor");
    if let Some(limit) = objects.limit {
        q = q.push(" LIMIT ").push_bind(i64::from(limit));
    }
    q.fetch_all(pool)
        .await?
        .into_iter()
        .map(object_of)
        .collect()
}

/// The object that owns `address`.
pub(crate) async fn lookup_address<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    address: &str,
) -> Result<StoredObject> {
    let address = address.trim().to_lowercase();
    let row = query(
        "SELECT o.integration_id, o.record, o.managed FROM address_claims a \
         JOIN objects o ON o.account_id = a.account_id AND o.anchor = a.anchor \
         WHERE a.account_id = $1 AND a.address = $2 AND a.owner = TRUE",
    )
    .bind(account_id)
    .bind(&address)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("address {address:?}")))?;
    object_of(row)
}

/// Change log entries, newest first: of one run, of one object, or both.
pub(crate) async fn list_changes<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    run_id: Option<&str>,
    anchor: Option<&str>,
    limit: u32,
) -> Result<Vec<ChangeRecord>> {
    query(
        "SELECT run_id, anchor, kind, dn, operation, fields, reason, at FROM change_log \
         WHERE account_id = $1 AND ($3 = '' OR anchor = $3) \
         AND (run_id = $2 OR ($2 = '' AND run_id NOT IN \
              (SELECT id FROM runs WHERE account_id = $1 AND trigger = 'preview'))) \
         ORDER BY at DESC, run_id, sequence DESC LIMIT $4",
    )
    .bind(account_id)
    .bind(run_id.unwrap_or_default())
    .bind(anchor.unwrap_or_default())
    .bind(i64::from(limit.clamp(1, 10_000)))
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|mut r| {
        let anchor: String = r.take("anchor")?;
        let kind: String = r.take("kind")?;
        let operation: String = r.take("operation")?;
        let fields: String = r.take("fields")?;
        Ok(ChangeRecord {
            run_id: r.take("run_id")?,
            at: r.get("at")?,
            change: Change {
                anchor: anchor.parse().map_err(|e| corrupt("change anchor", e))?,
                kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt("change kind", &kind))?,
                dn: r.take("dn")?,
                operation: Operation::parse(&operation)
                    .ok_or_else(|| corrupt("change operation", &operation))?,
                fields: serde_json::from_str(&fields).map_err(|e| corrupt("change fields", e))?,
                reason: r.take("reason")?,
            },
        })
    })
    .collect()
}

/// Names of the account's other integrations whose latest settled run
/// failed or is blocked.
pub(crate) async fn paused_by<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
) -> Result<Vec<String>> {
    let rows = query(
        "SELECT i.name, r.state FROM runs r JOIN integrations i ON i.id = r.integration_id \
         WHERE r.account_id = $1 AND r.integration_id <> $2 AND r.trigger <> 'preview' \
         AND r.state IN ('succeeded', 'failed', 'blocked') \
         AND r.created_at = (SELECT MAX(r2.created_at) FROM runs r2 \
             WHERE r2.account_id = r.account_id AND r2.integration_id = r.integration_id \
             AND r2.trigger <> 'preview' AND r2.state IN ('succeeded', 'failed', 'blocked')) \
         ORDER BY r.created_at, r.id",
    )
    .bind(account_id)
    .bind(integration_id)
    .fetch_all(pool)
    .await?;
    // The latest settled run of each integration decides.
    let mut latest: std::collections::BTreeMap<String, String> = Default::default();
    for mut r in rows {
        latest.insert(r.take("name")?, r.take("state")?);
    }
    Ok(latest
        .into_iter()
        .filter(|(_, state)| state != "succeeded")
        .map(|(name, state)| format!("{name} ({state})"))
        .collect())
}
