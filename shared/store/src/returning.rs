//! Returning users: a user removed from the directory and kept, unmanaged
//! (a deleted user's mailbox and history stay), who comes back under a new
//! objectGUID with the same primary address adopts her kept account
//! instead of getting a second one. The objectGUIDs adopted are
//! remembered as aliases of the kept anchors.

use dirsync_core::ObjectKind;
use dirsync_core::UnixMillis;
use dirsync_core::change::{Change, Operation};
use dirsync_core::returning::{Adoption, Aliases, Returning};

use crate::changes::{insert_changes, next_sequence};
use crate::corrupt;
use crate::dialect::Dialect;
use crate::row::query;
use crate::{Result, RunRecord};

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

/// Gives the kept users of `adoptions` back to the run's integration and
/// logs each a restore; a user managed again meanwhile, or gone, is left.
pub(crate) async fn adopt<D: Dialect>(
    pool: &Pool<D>,
    run: &RunRecord,
    adoptions: &[Adoption],
    now: UnixMillis,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let mut changes = Vec::new();
    for a in adoptions {
        let anchor = a.anchor.to_string();
        let moved = query(
            "UPDATE objects SET integration_id = $3 WHERE account_id = $1 AND anchor = $2 \
             AND NOT managed AND kind = 'user'",
        )
        .bind(&run.account_id)
        .bind(&anchor)
        .bind(&run.integration_id)
        .execute(&mut tx)
        .await?;
        if moved == 0 {
            continue; // managed again meanwhile, or gone
        }
        query(
            "INSERT INTO anchor_aliases (account_id, source_anchor, anchor, run_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, source_anchor) DO NOTHING",
        )
        .bind(&run.account_id)
        .bind(a.directory_anchor.to_string())
        .bind(&anchor)
        .bind(&run.id)
        .bind(now)
        .execute(&mut tx)
        .await?;
        let dn = query("SELECT dn FROM objects WHERE account_id = $1 AND anchor = $2")
            .bind(&run.account_id)
            .bind(&anchor)
            .fetch_optional(&mut tx)
            .await?
            .map(|r| r.get::<String>("dn"))
            .transpose()?;
        changes.push(Change {
            anchor: a.anchor,
            kind: ObjectKind::User,
            dn: dn.unwrap_or_default(),
            operation: Operation::Restore,
            fields: Vec::new(),
            reason: a.describe(),
        });
    }
    let start = next_sequence(&mut tx, run).await?;
    insert_changes(&mut tx, run, &changes, start, now).await?;
    tx.commit().await?;
    Ok(())
}
