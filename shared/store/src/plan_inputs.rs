//! What a plan reads of the store besides the integration's objects: the
//! account's kept unmanaged users (who may return), the objectGUIDs
//! adopted, the delta cursors, and the removals deltas made since the last
//! full run (the deletion guard counts them).

use dirsync_core::returning::{Aliases, Returning};

use crate::dialect::Dialect;
use crate::row::query;
use crate::{CursorRecord, Result};
use crate::{corrupt, u64_of};

type Pool<D> = sqlx::Pool<D>;

pub(crate) async fn returning_users<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
) -> Result<Returning> {
    let rows = query(
        "SELECT anchor, primary_address FROM objects WHERE account_id = $1 \
         AND NOT managed AND kind = 'user' AND primary_address IS NOT NULL",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    let mut out = Returning::new();
    for mut r in rows {
        let anchor: String = r.take("anchor")?;
        let address: String = r.take("primary_address")?;
        let anchor = anchor
            .parse()
            .map_err(|e| corrupt("an object's anchor", e))?;
        // An address that does not parse cannot match one.
        if let Ok(address) = dirsync_core::EmailAddress::parse(&address) {
            out.insert(address, anchor);
        }
    }
    Ok(out)
}

pub(crate) async fn anchor_aliases<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
) -> Result<Aliases> {
    let rows = query("SELECT source_anchor, anchor FROM anchor_aliases WHERE account_id = $1")
        .bind(account_id)
        .fetch_all(pool)
        .await?;
    let mut out = Aliases::new();
    for mut r in rows {
        let source: String = r.take("source_anchor")?;
        let anchor: String = r.take("anchor")?;
        out.insert(
            source
                .parse()
                .map_err(|e| corrupt("an alias's objectGUID", e))?,
            anchor
                .parse()
                .map_err(|e| corrupt("an alias's anchor", e))?,
        );
    }
    Ok(out)
}

pub(crate) async fn cursors<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
) -> Result<Vec<CursorRecord>> {
    query(
        "SELECT source, server, value, run_id, updated_at FROM sync_cursors \
         WHERE account_id = $1 AND integration_id = $2 ORDER BY updated_at DESC",
    )
    .bind(account_id)
    .bind(integration_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|mut r| {
        Ok(CursorRecord {
            source: r.take("source")?,
            server: r.take("server")?,
            value: r.take("value")?,
            run_id: r.take("run_id")?,
            updated_at: r.get("updated_at")?,
        })
    })
    .collect()
}

pub(crate) async fn delta_removals_since_full<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
) -> Result<u64> {
    let row = query(
        "SELECT CAST(COALESCE(SUM(r.removed), 0) AS BIGINT) AS removed FROM runs r \
         WHERE r.account_id = $1 AND r.integration_id = $2 \
         AND r.kind = 'delta' AND r.trigger <> 'preview' AND r.state IN ('succeeded', 'blocked') \
         AND r.created_at > COALESCE((SELECT MAX(f.created_at) FROM runs f \
             WHERE f.account_id = r.account_id AND f.integration_id = r.integration_id \
             AND f.kind = 'full' AND f.trigger <> 'preview' \
             AND f.state IN ('succeeded', 'blocked')), 0)",
    )
    .bind(account_id)
    .bind(integration_id)
    .fetch_one(pool)
    .await?;
    Ok(u64_of(row.get("removed")?))
}
