//! Address claims. An object claims the addresses its record carries; of
//! an address's claims the best (the lowest rank, then the lowest anchor)
//! owns it. Whatever changes claims notes their addresses in the
//! transaction's `touched_addresses`, and [`resolve_addresses`] works out
//! their owners once, at the end.

use std::collections::{HashMap, HashSet};

use dirsync_core::ObjectGuid;
use dirsync_core::change::Before;

use crate::bulk::{Cell, Rows};
use crate::dialect::Dialect;
use crate::row::{Row, query, query_built};
use crate::{Result, Tx, corrupt};

/// Rows per multi-row statement: well under SQLite's 32766 and
/// PostgreSQL's 65535 bound parameters.
pub(crate) const CHUNK: usize = 500;

/// A claim's key: (anchor, address).
pub(crate) type ClaimKey = (String, String);

/// Claims by key: (primary, rank, owner).
pub(crate) type Claims = HashMap<ClaimKey, (bool, String, bool)>;

/// The rows of `{head} account_id = $1 AND {column} IN (…keys)`, run a
/// chunk of keys at a time: the key lookups and deletes of an apply.
pub(crate) async fn by_keys<D: Dialect>(
    tx: &mut Tx<'_, D>,
    head: &'static str,
    account: &str,
    column: &'static str,
    keys: &[String],
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let q = query(head)
            .push(" account_id = ")
            .push_bind(account)
            .push(" AND ")
            .push(column)
            .push_in(chunk);
        out.extend(q.fetch_all(&mut *tx).await?);
    }
    Ok(out)
}

/// Starts the transaction's `touched_addresses`: the addresses whose owner
/// [`resolve_addresses`] works out again, and (`owner`) the object that
/// owned one when its claim was rewritten or deleted.
pub(crate) async fn start_touched<D: Dialect>(tx: &mut Tx<'_, D>) -> Result<()> {
    D::temp_table(
        &mut **tx,
        "touched_addresses",
        "address TEXT NOT NULL, owner TEXT",
    )
    .await
}

/// Whether the account owns any address (holds any claim: every address
/// claimed has an owner).
pub(crate) async fn owns_addresses<D: Dialect>(tx: &mut Tx<'_, D>, account: &str) -> Result<bool> {
    Ok(
        query("SELECT 1 FROM address_claims WHERE account_id = $1 LIMIT 1")
            .bind(account)
            .fetch_optional(tx)
            .await?
            .is_some(),
    )
}

/// The (anchor, address) of every claim the objects `anchors` hold, from
/// their stored records: an object claims the addresses its record
/// carries, so claims need no index by anchor. Records the caller already
/// read (`known`, for its change log) are not read again.
async fn claim_keys<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    anchors: &[String],
    known: &HashMap<ObjectGuid, Before>,
) -> Result<Vec<(String, String)>> {
    /// A record's addresses, as the claims were written from them (a
    /// record without its `aliases` is corrupt, not empty).
    #[derive(serde::Deserialize)]
    struct Addresses {
        primary_address: Option<String>,
        aliases: Vec<String>,
    }
    let mut keys = Vec::new();
    let mut unread = Vec::new();
    for anchor in anchors {
        match anchor.parse().ok().and_then(|a: ObjectGuid| known.get(&a)) {
            Some(before) => keys.extend(
                before
                    .record
                    .addresses()
                    .map(|(address, _)| (anchor.clone(), address.to_string())),
            ),
            None => unread.push(anchor.clone()),
        }
    }
    let rows = by_keys(
        tx,
        "SELECT anchor, record FROM objects WHERE",
        account,
        "anchor",
        &unread,
    )
    .await?;
    for mut r in rows {
        let anchor: String = r.take("anchor")?;
        let record: String = r.take("record")?;
        let a: Addresses =
            serde_json::from_str(&record).map_err(|e| corrupt("object record", e))?;
        for address in a.primary_address.into_iter().chain(a.aliases) {
            keys.push((anchor.clone(), address));
        }
    }
    Ok(keys)
}

/// The rows of `{head} account_id = $1 AND (anchor, address) IN (…)` of
/// the claims `keys`, a chunk at a time.
pub(crate) async fn by_claim_keys<D: Dialect>(
    tx: &mut Tx<'_, D>,
    head: &'static str,
    account: &str,
    keys: &[(String, String)],
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let mut q = query(head)
            .push(" account_id = ")
            .push_bind(account)
            .push(" AND (anchor, address) IN (VALUES ");
        for (i, (anchor, address)) in chunk.iter().enumerate() {
            q = q
                .push(if i == 0 { "(" } else { ", (" })
                .push_bind(anchor)
                .push(", ")
                .push_bind(address)
                .push(")");
        }
        out.extend(q.push(")").fetch_all(&mut *tx).await?);
    }
    Ok(out)
}

/// The claims of the objects `anchors`.
pub(crate) async fn claims_of<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    anchors: &[String],
    known: &HashMap<ObjectGuid, Before>,
) -> Result<Claims> {
    let keys = claim_keys(tx, account, anchors, known).await?;
    let rows = by_claim_keys(
        tx,
        "SELECT anchor, address, is_primary, claim_rank, owner FROM address_claims WHERE",
        account,
        &keys,
    )
    .await?;
    let mut claims = HashMap::with_capacity(rows.len());
    for mut r in rows {
        claims.insert(
            (r.take("anchor")?, r.take("address")?),
            (r.get("is_primary")?, r.take("claim_rank")?, r.get("owner")?),
        );
    }
    Ok(claims)
}

/// Deletes the claims `(anchor, address)`.
pub(crate) async fn delete_claims<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    claims: &[(String, String)],
) -> Result<()> {
    by_claim_keys(tx, "DELETE FROM address_claims WHERE", account, claims).await?;
    Ok(())
}

/// Notes the addresses of `claims` in `touched_addresses`, whose owners
/// are worked out at the end of the apply, with the object that owned
/// each.
pub(crate) async fn touch<D: Dialect>(tx: &mut Tx<'_, D>, claims: &Claims) -> Result<()> {
    let mut touched = Rows::new("touched_addresses", &["address", "owner"]);
    for ((anchor, address), (_, _, owner)) in claims {
        touched.push([
            Cell::from(address.as_str()),
            owner.then_some(anchor.as_str()).into(),
        ]);
    }
    D::insert_rows(&mut **tx, &touched, "").await
}

/// Marks each address's best claim (the lowest rank, then the lowest
/// anchor) its owner, and the owner's claim `contested` when other objects
/// claim the address too; three set-based statements at most.
/// `owned_before`: whether the account held claims when the transaction
/// began (see [`owns_addresses`]); if it did, a warning is given where an
/// object of this run (`upserted`) took an address over from another
/// managed object. If not, every claim is this transaction's and was
/// written as its address's owner: only addresses several objects claim
/// need resolving. `touched`: the addresses in `touched_addresses` are
/// resolved (all that may need it are there); otherwise those that several
/// claims of the account name, found from all of them.
pub(crate) async fn resolve_addresses<D: Dialect>(
    tx: &mut Tx<'_, D>,
    account: &str,
    owned_before: bool,
    touched: bool,
    upserted: &HashSet<ObjectGuid>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    // Ranks and anchors are ASCII and compare bytewise, as claim_rank()
    // intends, whatever the database's collation; addresses are only
    // grouped (equal bytes under any deterministic collation).
    let resolved = if touched {
        D::analyze_temp(&mut **tx, "touched_addresses").await?;
        "SELECT address FROM touched_addresses"
    } else {
        "SELECT address FROM address_claims WHERE account_id = $1 GROUP BY address HAVING COUNT(*) > 1"
    };
    let best = format!(
        "SELECT c.address, c.anchor, \
         ROW_NUMBER() OVER (PARTITION BY c.address ORDER BY c.claim_rank{bytewise}, \
         c.anchor{bytewise}) AS n, \
         COUNT(*) OVER (PARTITION BY c.address) AS claims \
         FROM address_claims c WHERE c.account_id = $1 AND c.address IN ({resolved})",
        bytewise = D::BYTEWISE,
    );
    if owned_before {
        // The owners before this transaction: the claims it rewrote or
        // deleted noted theirs in touched_addresses; the others still
        // carry the mark.
        let takeovers = query_built(format!(
            "SELECT b.address, b.anchor, o.dn, p.dn AS previous_dn FROM ({best}) b \
             JOIN (SELECT address, owner AS anchor FROM touched_addresses WHERE owner IS NOT NULL \
                   UNION SELECT address, anchor FROM address_claims \
                   WHERE account_id = $1 AND owner = TRUE \
                   AND address IN (SELECT address FROM touched_addresses)) a ON a.address = b.address \
             JOIN objects p ON p.account_id = $1 AND p.anchor = a.anchor \
             JOIN objects o ON o.account_id = $1 AND o.anchor = b.anchor \
             WHERE b.n = 1 AND p.managed = TRUE AND a.anchor <> b.anchor ORDER BY b.address"
        ))
        .bind(account)
        .fetch_all(&mut *tx)
        .await?;
        for r in &takeovers {
            let anchor: String = r.get("anchor")?;
            let anchor: ObjectGuid = anchor.parse().map_err(|e| corrupt("object anchor", e))?;
            if upserted.contains(&anchor) {
                let (address, dn, previous): (String, String, String) =
                    (r.get("address")?, r.get("dn")?, r.get("previous_dn")?);
                warnings.push(format!(
                    "{dn}: address {address} was taken over from {previous}, whose claim ranks lower"
                ));
            }
        }
    }
    // Only the claims whose marks change are written.
    query_built(format!(
        "UPDATE address_claims SET owner = (b.n = 1), contested = (b.n = 1 AND b.claims > 1) \
         FROM ({best}) b \
         WHERE address_claims.account_id = $1 AND address_claims.address = b.address \
         AND address_claims.anchor = b.anchor \
         AND (address_claims.owner <> (b.n = 1) OR address_claims.contested <> (b.n = 1 AND b.claims > 1))"
    ))
    .bind(account)
    .execute(tx)
    .await?;
    Ok(())
}
