//! The SQL of the store, instantiated for PostgreSQL and SQLite.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::Row;

use dirsync_core::change::{self, Before, Change, Operation};
use dirsync_core::plan::{
    Current, CurrentObject, Hold, Plan, Removal, RemovalAction, Upsert, claim_rank,
};
use dirsync_core::returning::{Adoption, Aliases, Returning};
use dirsync_core::{
    ObjectGuid, ObjectKind, ObjectRecord, RunCounts, RunState, SealedSecret, ShortHash, Trigger,
    UnixMillis,
};

use crate::bulk::{Cell, ROWS_PER_WRITE, Rows};
use crate::dialect::Dialect;
use crate::sieve::AddressSieve;
use crate::{
    AccountRecord, ApplyOutcome, ChangeRecord, CursorRecord, DirectoryStore, IntegrationRecord,
    ObjectQuery, Result, RunRecord, SessionRecord, SettledMark, SignInLimits, StagedBatch,
    StoreError, StoredObject, TokenRecord,
};
use crate::{accounts, directory, integrations, plan_inputs, runs, staging};
use crate::{corrupt, i64_of, json};

/// The store on a database of dialect `D`.
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pub pool: sqlx::Pool<D>,
}

fn object_from_parts(integration_id: String, record: &str, managed: bool) -> Result<StoredObject> {
    let record: ObjectRecord =
        serde_json::from_str(record).map_err(|e| corrupt("directory object", e))?;
    Ok(StoredObject {
        integration_id,
        record,
        managed,
    })
}

fn action_str(a: RemovalAction) -> &'static str {
    match a {
        RemovalAction::Delete => "delete",
        RemovalAction::Demote => "demote",
    }
}

fn removal_from_parts(
    anchor: String,
    kind: String,
    action: String,
    reason: String,
) -> Result<Removal> {
    Ok(Removal {
        anchor: anchor.parse().map_err(|e| corrupt("pending anchor", e))?,
        kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt("pending kind", &kind))?,
        action: match action.as_str() {
            "delete" => RemovalAction::Delete,
            "demote" => RemovalAction::Demote,
            other => return Err(corrupt("pending action", other)),
        },
        reason,
    })
}

/// Objects written by one apply beyond which PostgreSQL's statistics are
/// refreshed within it.
const ANALYZE_AFTER: usize = 5_000;

/// Rows per multi-row statement: well under SQLite's 32766 and
/// PostgreSQL's 65535 bound parameters.
const CHUNK: usize = 500;

/// Entry digests brought up to date per statement (two binds each).
const DIGESTS_PER_WRITE: usize = 5_000;

/// ` IN (SELECT column1 FROM (VALUES ($n), …) AS k)` over `values`: with
/// statistics (see ANALYZE_AFTER) PostgreSQL probes the index once per key.
fn push_in<DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, values: &[String])
where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    qb.push(" IN (SELECT column1 FROM (VALUES ");
    let mut list = qb.separated(", ");
    for v in values {
        list.push("(");
        list.push_bind_unseparated(v.clone());
        list.push_unseparated(")");
    }
    qb.push(") AS k)");
}

/// `{head} account_id = $1 AND {column} IN (…keys)`: the key lookups and
/// deletes of an apply, a chunk of keys at a time.
fn keyed<DB: sqlx::Database>(
    head: &str,
    account: &str,
    column: &str,
    keys: &[String],
) -> sqlx::QueryBuilder<DB>
where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    <DB as sqlx::Database>::Arguments: Default,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new(format!("{head} account_id = "));
    qb.push_bind(account.to_owned());
    qb.push(format!(" AND {column}"));
    push_in(&mut qb, keys);
    qb
}

/// A run's apply in progress (see [`crate::Apply`]).
pub struct SqlApply<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    run: RunRecord,
    now: UnixMillis,
    /// A preview run logs its changes and writes nothing else.
    preview: bool,
    integration_created_at: i64,
    /// Whether the account owned addresses before the run: only then can
    /// an address change hands, and a takeover be reported.
    owned_before: bool,
    /// Objects the run wrote, for takeover warnings (when `owned_before`).
    upserted: HashSet<ObjectGuid>,
    /// The addresses the run may claim twice (when not `owned_before`).
    sieve: AddressSieve,
    /// Objects the run wrote.
    written: usize,
    /// The run's next change-log sequence number.
    sequence: i64,
    added: u64,
    updated: u64,
    warnings: Vec<String>,
}

macro_rules! store_impl {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// Starts the transaction's `touched_addresses`: the addresses
            /// whose owner [`Self::resolve_addresses`] works out again, and
            /// (`owner`) the object that owned one when its claim was
            /// rewritten or deleted.
            async fn start_touched(tx: &mut sqlx::Transaction<'_, $db>) -> Result<()> {
                <$db as Dialect>::temp_table(&mut **tx, "touched_addresses", "address TEXT NOT NULL, owner TEXT").await
            }

            /// Makes the transaction the only one changing the account's
            /// objects and address claims until it ends: who owns an
            /// address is worked out from every claim of the account, so two
            /// integrations' applies (or an approval, or an integration's
            /// deletion) take turns. PostgreSQL takes a transaction-level
            /// advisory lock; SQLite has one writer at a time anyway.
            async fn lock_account(tx: &mut sqlx::Transaction<'_, $db>, account: &str) -> Result<()> {
                <$db as Dialect>::lock_account(tx, account).await
            }

            /// Whether an integration of the account other than
            /// `integration` holds objects: two range reads of
            /// `objects_by_integration`, however many objects it holds.
            async fn others_hold_objects(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                integration: &str,
            ) -> Result<bool> {
                Ok(sqlx::query(
                    "SELECT 1 WHERE EXISTS (SELECT 1 FROM objects WHERE account_id = $1 AND integration_id < $2) \
                     OR EXISTS (SELECT 1 FROM objects WHERE account_id = $1 AND integration_id > $2)",
                )
                .bind(account)
                .bind(integration)
                .fetch_optional(&mut **tx)
                .await?
                .is_some())
            }

            /// Whether the account owns any address (holds any claim: every
            /// address claimed has an owner).
            async fn owns_addresses(tx: &mut sqlx::Transaction<'_, $db>, account: &str) -> Result<bool> {
                Ok(sqlx::query("SELECT 1 FROM address_claims WHERE account_id = $1 LIMIT 1")
                    .bind(account)
                    .fetch_optional(&mut **tx)
                    .await?
                    .is_some())
            }

            /// The (anchor, address) of every claim the objects `anchors`
            /// hold, from their stored records: an object claims the
            /// addresses its record carries, so claims need no index by
            /// anchor. Records the caller already read (`known`, for its
            /// change log) are not read again.
            async fn claim_keys(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                anchors: &[String],
                known: &HashMap<ObjectGuid, Before>,
            ) -> Result<Vec<(String, String)>> {
                /// A record's addresses, as the claims were written from them
                /// (a record without its `aliases` is corrupt, not empty).
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
                            before.record.addresses().map(|(address, _)| (anchor.clone(), address.to_string())),
                        ),
                        None => unread.push(anchor.clone()),
                    }
                }
                for chunk in unread.chunks(CHUNK) {
                    let mut qb = keyed::<$db>("SELECT anchor, record FROM objects WHERE", account, "anchor", chunk);
                    for r in qb.build().fetch_all(&mut **tx).await? {
                        let anchor: String = r.try_get("anchor")?;
                        let record: String = r.try_get("record")?;
                        let a: Addresses =
                            serde_json::from_str(&record).map_err(|e| corrupt("object record", e))?;
                        for address in a.primary_address.into_iter().chain(a.aliases) {
                            keys.push((anchor.clone(), address));
                        }
                    }
                }
                Ok(keys)
            }

            /// `{head} account_id = $1 AND (anchor, address) IN (…)` of the
            /// claims `keys`, a chunk at a time.
            async fn by_claim_keys(
                tx: &mut sqlx::Transaction<'_, $db>,
                head: &str,
                account: &str,
                keys: &[(String, String)],
                mut each: impl FnMut(<$db as sqlx::Database>::Row) -> Result<()> + Send,
            ) -> Result<()> {
                for chunk in keys.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!("{head} account_id = "));
                    qb.push_bind(account.to_owned());
                    qb.push(" AND (anchor, address) IN (VALUES ");
                    let mut row = qb.separated(", ");
                    for (anchor, address) in chunk {
                        row.push("(");
                        row.push_bind_unseparated(anchor.clone());
                        row.push_unseparated(", ");
                        row.push_bind_unseparated(address.clone());
                        row.push_unseparated(")");
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(&mut **tx).await? {
                        each(r)?;
                    }
                }
                Ok(())
            }

            /// The claims of the objects `anchors`: (anchor, address) →
            /// (primary, rank, owner).
            async fn claims_of(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                anchors: &[String],
                known: &HashMap<ObjectGuid, Before>,
            ) -> Result<HashMap<(String, String), (bool, String, bool)>> {
                let keys = Self::claim_keys(tx, account, anchors, known).await?;
                let mut claims = HashMap::with_capacity(keys.len());
                Self::by_claim_keys(
                    tx,
                    "SELECT anchor, address, is_primary, claim_rank, owner FROM address_claims WHERE",
                    account,
                    &keys,
                    |r| {
                        claims.insert(
                            (r.try_get("anchor")?, r.try_get("address")?),
                            (r.try_get("is_primary")?, r.try_get("claim_rank")?, r.try_get("owner")?),
                        );
                        Ok(())
                    },
                )
                .await?;
                Ok(claims)
            }

            /// Deletes the claims `(anchor, address)`.
            async fn delete_claims(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                claims: &[(String, String)],
            ) -> Result<()> {
                Self::by_claim_keys(tx, "DELETE FROM address_claims WHERE", account, claims, |_| Ok(())).await
            }

            /// Notes the addresses of `claims` in `touched_addresses`, whose
            /// owners are worked out at the end of the apply, with the
            /// object that owned each.
            async fn touch(
                tx: &mut sqlx::Transaction<'_, $db>,
                claims: &HashMap<(String, String), (bool, String, bool)>,
            ) -> Result<()> {
                let mut touched = Rows::new("touched_addresses", &["address", "owner"]);
                for ((anchor, address), (_, _, owner)) in claims {
                    touched.push([Cell::from(address.as_str()), owner.then_some(anchor.as_str()).into()]);
                }
                <$db as Dialect>::insert_rows(&mut **tx, &touched, "").await
            }

            /// Writes adds and updates: their objects, address claims and
            /// member edges. `stored` names those the store already holds:
            /// their edges are replaced, and of their claims only those
            /// that changed (address, primary or rank) are: the addresses
            /// of claims deleted or added go to `touched_addresses`. The others
            /// are not in the store (and no other apply of the account runs
            /// meanwhile: see [`Self::lock_account`]), and are copied in
            /// without a conflict clause. (A first sync's objects are all
            /// new: it looks nothing up.) `known`: stored records the
            /// caller already read. Without `touch` (no claim in the account
            /// before), only the addresses `sieve` flags as perhaps claimed
            /// before go to `touched_addresses`, unless it overflowed.
            #[allow(clippy::too_many_arguments)]
            async fn write_upserts(
                tx: &mut sqlx::Transaction<'_, $db>,
                run: &RunRecord,
                upserts: &[&Upsert],
                stored: &[String],
                known: &HashMap<ObjectGuid, Before>,
                integration_created_at: i64,
                touch: bool,
                sieve: &mut AddressSieve,
                now: UnixMillis,
            ) -> Result<()> {
                let account = run.account_id.as_str();
                // An apply's claims have one of four ranks: made once.
                let ranks = [false, true].map(|is_primary| {
                    [false, true].map(|disabled| {
                        claim_rank(is_primary, disabled, integration_created_at, &run.integration_id)
                    })
                });
                let rank = |rec: &dirsync_core::ObjectRecord, is_primary: bool| {
                    ranks[usize::from(is_primary)][usize::from(rec.disabled)].as_str()
                };
                // The stored objects' claims that stay as they are; the
                // others are deleted, their addresses (and owners) noted.
                let mut previous = Self::claims_of(tx, account, stored, known).await?;
                let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
                let mut kept_claims: HashSet<(String, String)> = HashSet::new();
                for upsert in upserts {
                    let rec = &upsert.record;
                    let anchor = rec.anchor.to_string();
                    if !stored.contains(anchor.as_str()) {
                        continue;
                    }
                    for (address, is_primary) in rec.addresses() {
                        let key = (anchor.clone(), address.to_string());
                        if previous.get(&key).is_some_and(|(p, r, _)| *p == is_primary && *r == rank(rec, is_primary)) {
                            previous.remove(&key);
                            kept_claims.insert(key);
                        }
                    }
                }
                Self::touch(tx, &previous).await?;
                let gone: Vec<(String, String)> = previous.into_keys().collect();
                Self::delete_claims(tx, account, &gone).await?;
                for chunk in upserts.chunks(ROWS_PER_WRITE) {
                    const OBJECT_COLUMNS: &[&str] = &[
                        "account_id", "anchor", "integration_id", "kind", "dn", "display_name",
                        "primary_address", "disabled", "managed", "record", "content_hash", "entry_digest",
                        "updated_at", "manager_anchor",
                    ];
                    // Objects the store holds are updated in place; the others
                    // are copied in as they are (a first sync's, all of them).
                    let mut objects = Rows::new("objects", OBJECT_COLUMNS);
                    let mut fresh = Rows::new("objects", OBJECT_COLUMNS);
                    let mut claims = Rows::new("address_claims", &[
                        "account_id", "address", "anchor", "is_primary", "claim_rank", "owner",
                    ]);
                    let mut touched = Rows::new("touched_addresses", &["address"]);
                    let mut edges = Rows::new("members", &["account_id", "group_anchor", "member_anchor"]);
                    let mut groups = Vec::new();
                    for upsert in chunk {
                        let rec = &upsert.record;
                        let anchor = rec.anchor.to_string();
                        let held = stored.contains(anchor.as_str());
                        (if held { &mut objects } else { &mut fresh }).push([
                            Cell::from(account),
                            anchor.clone().into(),
                            run.integration_id.as_str().into(),
                            rec.kind.as_str().into(),
                            rec.dn.as_str().into(),
                            rec.attributes.display_name.as_str().into(),
                            rec.primary_address.as_ref().map(|a| a.to_string()).into(),
                            rec.disabled.into(),
                            true.into(),
                            upsert.json.as_str().into(),
                            upsert.content_hash.to_string().into(),
                            upsert.entry_digest.map(|d| d.to_string()).into(),
                            now.into(),
                            rec.manager.map(|m| m.to_string()).into(),
                        ]);
                        for (address, is_primary) in rec.addresses() {
                            let address = address.to_string();
                            if held && kept_claims.contains(&(anchor.clone(), address.clone())) {
                                continue;
                            }
                            let rank = rank(rec, is_primary);
                            if touch || (sieve.seen_before(&address) && !sieve.overflowed()) {
                                touched.push([Cell::from(address.clone())]);
                            }
                            // With no claim in the account before (`touch`
                            // false), each is written as its address's owner
                            // and only addresses several objects claim are
                            // resolved; otherwise resolving marks the owners.
                            claims.push([
                                Cell::from(account),
                                address.into(),
                                anchor.clone().into(),
                                is_primary.into(),
                                rank.into(),
                                (!touch).into(),
                            ]);
                        }
                        if rec.kind == ObjectKind::Group {
                            for m in &rec.members {
                                edges.push([Cell::from(account), anchor.clone().into(), m.to_string().into()]);
                            }
                            if held {
                                groups.push(anchor);
                            }
                        }
                    }
                    <$db as Dialect>::insert_rows(
                        &mut **tx,
                        &objects,
                        "ON CONFLICT (account_id, anchor) DO UPDATE SET integration_id = excluded.integration_id, \
                         kind = excluded.kind, dn = excluded.dn, display_name = excluded.display_name, \
                         primary_address = excluded.primary_address, disabled = excluded.disabled, \
                         managed = TRUE, record = excluded.record, content_hash = excluded.content_hash, \
                         entry_digest = excluded.entry_digest, updated_at = excluded.updated_at, \
                         manager_anchor = excluded.manager_anchor",
                    )
                    .await?;
                    <$db as Dialect>::insert_rows(&mut **tx, &fresh, "").await?;
                    // The claims these objects still hold are the unchanged
                    // ones, skipped above, and an object claims an address
                    // once: copied in as they are.
                    <$db as Dialect>::insert_rows(&mut **tx, &claims, "").await?;
                    <$db as Dialect>::insert_rows(&mut **tx, &touched, "").await?;
                    for part in groups.chunks(CHUNK) {
                        let mut qb = keyed::<$db>("DELETE FROM members WHERE", account, "group_anchor", part);
                        qb.build().execute(&mut **tx).await?;
                    }
                    // The groups' edges were deleted above and a record's
                    // members are distinct.
                    <$db as Dialect>::insert_rows(&mut **tx, &edges, "").await?;
                }

                Ok(())
            }

            /// Whether PostgreSQL's statistics no longer describe the tables
            /// once an apply wrote `written` objects: past [`ANALYZE_AFTER`],
            /// and past its own auto-analyze threshold (50 rows and a tenth of
            /// the rows its statistics count in `objects`). A first sync's
            /// are stale; a resync that changes 1% of a large directory need
            /// not sample millions of rows again.
            async fn statistics_stale(tx: &mut sqlx::Transaction<'_, $db>, written: usize) -> Result<bool> {
                if written < ANALYZE_AFTER {
                    return Ok(false);
                }
                <$db as Dialect>::statistics_stale(tx, written).await
            }

            /// Deletes or demotes objects; part of the caller's transaction.
            /// Their addresses go to `touched_addresses`. `known`: stored
            /// records the caller already read.
            async fn remove(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                removals: &[Removal],
                known: &HashMap<ObjectGuid, Before>,
                now: UnixMillis,
            ) -> Result<()> {
                // A chunk of objects at a time: a large removal (an
                // integration's deletion) never holds all their claims.
                for chunk in removals.chunks(ROWS_PER_WRITE) {
                    let anchors: Vec<String> = chunk.iter().map(|r| r.anchor.to_string()).collect();
                    let claims = Self::claims_of(tx, account, &anchors, known).await?;
                    Self::touch(tx, &claims).await?;
                    let deleted: HashSet<String> = chunk
                        .iter()
                        .filter(|r| r.action == RemovalAction::Delete)
                        .map(|r| r.anchor.to_string())
                        .collect();
                    let (gone, demoted): (Vec<(String, String)>, Vec<(String, String)>) =
                        claims.into_keys().partition(|(anchor, _)| deleted.contains(anchor));
                    Self::delete_claims(tx, account, &gone).await?;
                    // A demoted object's claims rank after every managed claim.
                    Self::by_claim_keys(
                        tx,
                        "UPDATE address_claims SET claim_rank = '1' || substr(claim_rank, 2) WHERE",
                        account,
                        &demoted,
                        |_| Ok(()),
                    )
                    .await?;
                }
                for removal in removals {
                    let anchor = removal.anchor.to_string();
                    match removal.action {
                        RemovalAction::Demote => {
                            sqlx::query(
                                "UPDATE objects SET managed = FALSE, updated_at = $3 \
                                 WHERE account_id = $1 AND anchor = $2",
                            )
                            .bind(account)
                            .bind(&anchor)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        RemovalAction::Delete => {
                            for sql in [
                                "DELETE FROM objects WHERE account_id = $1 AND anchor = $2",
                                "DELETE FROM members WHERE account_id = $1 AND (group_anchor = $2 OR member_anchor = $2)",
                            ] {
                                sqlx::query(sql)
                                    .bind(account)
                                    .bind(&anchor)
                                    .execute(&mut **tx)
                                    .await?;
                            }
                        }
                    }
                }
                Ok(())
            }

            /// Removes objects outside a sync run (an approval, a deleted
            /// integration) and gives their addresses to the best remaining
            /// claims.
            async fn remove_and_resolve(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                removals: &[Removal],
                now: UnixMillis,
            ) -> Result<()> {
                Self::start_touched(tx).await?;
                Self::remove(tx, account, removals, &HashMap::new(), now).await?;
                let owned_before = Self::owns_addresses(tx, account).await?;
                Self::resolve_addresses(tx, account, owned_before, owned_before, &HashSet::new(), &mut Vec::new())
                    .await
            }

            /// Marks each address's best claim (the lowest rank, then the
            /// lowest anchor) its owner, and the owner's claim `contested`
            /// when other objects claim the address too; three set-based
            /// statements at most. `owned_before`: whether the account held
            /// claims when the transaction began (see
            /// [`Self::owns_addresses`]); if it did, a warning is given where
            /// an object of this run (`upserted`) took an address over from
            /// another managed object. If not, every claim is this
            /// transaction's and was written as its address's owner: only
            /// addresses several objects claim need resolving. `touched`:
            /// the addresses in `touched_addresses` are resolved (all that
            /// may need it are there); otherwise those that several claims
            /// of the account name, found from all of them.
            async fn resolve_addresses(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                owned_before: bool,
                touched: bool,
                upserted: &HashSet<ObjectGuid>,
                warnings: &mut Vec<String>,
            ) -> Result<()> {
                // Ranks and anchors are ASCII and compare bytewise, as
                // claim_rank() intends, whatever the database's collation;
                // addresses are only grouped (equal bytes under any
                // deterministic collation).
                let resolved = if touched {
                    // Temporary tables are never analyzed on their own.
                    <$db as Dialect>::analyze_temp(tx, "touched_addresses").await?;
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
                    bytewise = <$db as Dialect>::BYTEWISE,
                );
                if owned_before {
                    // The owners before this transaction: the claims it
                    // rewrote or deleted noted theirs in touched_addresses;
                    // the others still carry the mark.
                    let takeovers = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT b.address, b.anchor, o.dn, p.dn AS previous_dn FROM ({best}) b \
                         JOIN (SELECT address, owner AS anchor FROM touched_addresses WHERE owner IS NOT NULL \
                               UNION SELECT address, anchor FROM address_claims \
                               WHERE account_id = $1 AND owner = TRUE \
                               AND address IN (SELECT address FROM touched_addresses)) a ON a.address = b.address \
                         JOIN objects p ON p.account_id = $1 AND p.anchor = a.anchor \
                         JOIN objects o ON o.account_id = $1 AND o.anchor = b.anchor \
                         WHERE b.n = 1 AND p.managed = TRUE AND a.anchor <> b.anchor ORDER BY b.address"
                    )))
                    .bind(account)
                    .fetch_all(&mut **tx)
                    .await?;
                    for r in &takeovers {
                        let anchor: String = r.try_get("anchor")?;
                        let anchor: ObjectGuid = anchor.parse().map_err(|e| corrupt("object anchor", e))?;
                        if upserted.contains(&anchor) {
                            let (address, dn, previous): (String, String, String) =
                                (r.try_get("address")?, r.try_get("dn")?, r.try_get("previous_dn")?);
                            warnings.push(format!(
                                "{dn}: address {address} was taken over from {previous}, whose claim ranks lower"
                            ));
                        }
                    }
                }
                // Only the claims whose marks change are written.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE address_claims SET owner = (b.n = 1), contested = (b.n = 1 AND b.claims > 1) \
                     FROM ({best}) b \
                     WHERE address_claims.account_id = $1 AND address_claims.address = b.address \
                     AND address_claims.anchor = b.anchor \
                     AND (address_claims.owner <> (b.n = 1) OR address_claims.contested <> (b.n = 1 AND b.claims > 1))"
                )))
                .bind(account)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Logs a plan's changes; reads the records they replace, so it
            /// runs before the plan is applied, in the same transaction.
            async fn log_changes(
                tx: &mut sqlx::Transaction<'_, $db>,
                run: &RunRecord,
                plan: &Plan,
                now: UnixMillis,
            ) -> Result<()> {
                let anchors = plan
                    .updates
                    .iter()
                    .map(|u| u.record.anchor)
                    .chain(plan.removals.iter().chain(&plan.held).map(|r| r.anchor));
                let before = Self::records_before(tx, &run.account_id, anchors).await?;
                let start = Self::next_sequence(tx, run).await?;
                Self::insert_changes(tx, run, &change::changes(plan, &before), start, now).await?;
                Ok(())
            }

            /// The stored records of `anchors`, as a change compares them.
            async fn records_before(
                tx: &mut sqlx::Transaction<'_, $db>,
                account: &str,
                anchors: impl Iterator<Item = ObjectGuid>,
            ) -> Result<HashMap<ObjectGuid, Before>> {
                let anchors: Vec<String> = anchors.map(|a| a.to_string()).collect();
                let mut before = HashMap::new();
                for chunk in anchors.chunks(CHUNK) {
                    let mut qb = keyed::<$db>("SELECT anchor, record, managed FROM objects WHERE", account, "anchor", chunk);
                    for row in qb.build().fetch_all(&mut **tx).await? {
                        let anchor: String = row.try_get("anchor")?;
                        let record: String = row.try_get("record")?;
                        before.insert(
                            anchor.parse().map_err(|e| corrupt("object anchor", e))?,
                            Before {
                                record: serde_json::from_str(&record)
                                    .map_err(|e| corrupt("directory object", e))?,
                                managed: row.try_get("managed")?,
                            },
                        );
                    }
                }
                Ok(before)
            }

            /// The sequence number of the run's next change-log entry.
            async fn next_sequence(tx: &mut sqlx::Transaction<'_, $db>, run: &RunRecord) -> Result<i64> {
                Ok(sqlx::query(
                    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM change_log WHERE run_id = $1",
                )
                .bind(&run.id)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?)
            }

            /// Logs changes from sequence number `start`; returns the next.
            async fn insert_changes(
                tx: &mut sqlx::Transaction<'_, $db>,
                run: &RunRecord,
                changes: &[Change],
                start: i64,
                now: UnixMillis,
            ) -> Result<i64> {
                for (i, chunk) in changes.chunks(ROWS_PER_WRITE).enumerate() {
                    let mut rows = Rows::new("change_log", &[
                        "run_id", "account_id", "sequence", "anchor", "kind", "dn", "operation",
                        "fields", "reason", "at",
                    ]);
                    for (n, c) in chunk.iter().enumerate() {
                        let sequence = start + i64_of((i * ROWS_PER_WRITE + n) as u64);
                        rows.push([
                            Cell::from(run.id.as_str()),
                            run.account_id.as_str().into(),
                            sequence.into(),
                            c.anchor.to_string().into(),
                            c.kind.as_str().into(),
                            c.dn.as_str().into(),
                            c.operation.as_str().into(),
                            json(&c.fields).into(),
                            c.reason.as_str().into(),
                            now.into(),
                        ]);
                    }
                    <$db as Dialect>::insert_rows(&mut **tx, &rows, "").await?;
                }
                Ok(start + i64_of(changes.len() as u64))
            }

            /// Claims an unsettled run at this attempt for applying; false
            /// when it is settled or superseded.
            async fn claim(tx: &mut sqlx::Transaction<'_, $db>, run: &RunRecord) -> Result<bool> {
                let claimed = sqlx::query(
                    "UPDATE runs SET state = 'reconciling', attempt = $2 WHERE id = $1 AND attempt <= $2 \
                     AND state IN ('queued', 'collecting', 'reconciling')",
                )
                .bind(&run.id)
                .bind(i64::from(run.attempt))
                .execute(&mut **tx)
                .await?;
                Ok(claimed.rows_affected() == 1)
            }

            #[allow(clippy::too_many_arguments)]
            async fn settle(
                tx: &mut sqlx::Transaction<'_, $db>,
                run: &RunRecord,
                state: RunState,
                counts: &RunCounts,
                warnings: &[String],
                hold_reason: &str,
                now: UnixMillis,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE runs SET state = $9, collected = $2, added = $3, updated = $4, \
                     removed = $5, unchanged = $6, warnings = $7, finished_at = $8, \
                     pending = $10, hold_reason = $11, kind = $12, full_reason = $13 WHERE id = $1",
                )
                .bind(&run.id)
                .bind(i64_of(counts.collected))
                .bind(i64_of(counts.added))
                .bind(i64_of(counts.updated))
                .bind(i64_of(counts.removed))
                .bind(i64_of(counts.unchanged))
                .bind(json(&warnings))
                .bind(now)
                .bind(state.as_str())
                .bind(i64_of(counts.pending))
                .bind(hold_reason)
                .bind(run.kind.as_str())
                .bind(&run.full_reason)
                .execute(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM staged_batches WHERE run_id = $1")
                    .bind(&run.id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }




        }

        #[async_trait]
        impl DirectoryStore for SqlStore<$db> {
            async fn healthy(&self) -> bool {
                sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
            }

            async fn ensure_account(&self, account_id: &str, now: UnixMillis) -> Result<()> {
                accounts::ensure_account(&self.pool, account_id, now).await
            }

            async fn create_token(&self, t: &TokenRecord) -> Result<()> {
                accounts::create_token(&self.pool, t).await
            }

            async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
                accounts::token(&self.pool, id).await
            }

            async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
                accounts::list_tokens(&self.pool, account_id).await
            }

            async fn revoke_token(&self, account_id: &str, id: &str, now: UnixMillis) -> Result<()> {
                accounts::revoke_token(&self.pool, account_id, id, now).await
            }

            async fn create_session(&self, t: &SessionRecord) -> Result<()> {
                accounts::create_session(&self.pool, t).await
            }

            async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
                accounts::session(&self.pool, id).await
            }

            async fn end_session(&self, id: &str, now: UnixMillis) -> Result<()> {
                accounts::end_session(&self.pool, id, now).await
            }

            async fn password_key_ids(&self) -> Result<Vec<String>> {
                integrations::password_key_ids(&self.pool).await
            }

            async fn password_key_counts(&self) -> Result<Vec<(String, u64)>> {
                integrations::password_key_counts(&self.pool).await
            }

            async fn passwords_not_sealed_with(&self, key_id: &str) -> Result<Vec<IntegrationRecord>> {
                integrations::passwords_not_sealed_with(&self.pool, key_id).await
            }

            async fn reseal_password(
                &self,
                account_id: &str,
                integration_id: &str,
                from: &SealedSecret,
                to: &SealedSecret,
            ) -> Result<bool> {
                integrations::reseal_password(&self.pool, account_id, integration_id, from, to).await
            }

            async fn get_account(&self, account_id: &str) -> Result<AccountRecord> {
                accounts::get_account(&self.pool, account_id).await
            }

            async fn update_account(&self, account: &AccountRecord, now: UnixMillis) -> Result<()> {
                accounts::update_account(&self.pool, account, now).await
            }

            async fn scheduled_integrations(&self) -> Result<Vec<(IntegrationRecord, AccountRecord)>> {
                integrations::scheduled_integrations(&self.pool).await
            }

            async fn fail_stuck_runs(
                &self,
                before: UnixMillis,
                reason: &str,
                now: UnixMillis,
            ) -> Result<Vec<String>> {
                runs::fail_stuck_runs(&self.pool, before, reason, now).await
            }

            async fn last_success(
                &self,
                account_id: &str,
                integration_id: &str,
            ) -> Result<Option<RunRecord>> {
                runs::last_success(&self.pool, account_id, integration_id).await
            }

            async fn create_integration(&self, rec: &IntegrationRecord) -> Result<()> {
                integrations::create_integration(&self.pool, rec).await
            }

            async fn get_integration(
                &self,
                account_id: &str,
                id_or_name: &str,
            ) -> Result<IntegrationRecord> {
                integrations::get_integration(&self.pool, account_id, id_or_name).await
            }

            async fn list_integrations(&self, account_id: &str) -> Result<Vec<IntegrationRecord>> {
                integrations::list_integrations(&self.pool, account_id).await
            }

            async fn update_integration(&self, rec: &IntegrationRecord) -> Result<()> {
                integrations::update_integration(&self.pool, rec).await
            }

            async fn delete_integration(
                &self,
                account_id: &str,
                id: &str,
                now: UnixMillis,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                Self::lock_account(&mut tx, account_id).await?;
                let done = sqlx::query("DELETE FROM integrations WHERE account_id = $1 AND id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("integration {id:?}")));
                }
                sqlx::query(
                    "DELETE FROM staged_batches WHERE run_id IN \
                     (SELECT id FROM runs WHERE account_id = $1 AND integration_id = $2)",
                )
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM sync_cursors WHERE account_id = $1 AND integration_id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM runs WHERE account_id = $1 AND integration_id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                // Its objects stay, unmanaged; their addresses go to the
                // best remaining claims.
                let rows = sqlx::query(
                    "SELECT anchor, kind FROM objects WHERE account_id = $1 AND integration_id = $2 AND managed = TRUE",
                )
                .bind(account_id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let demoted = rows
                    .iter()
                    .map(|r| {
                        removal_from_parts(
                            r.try_get("anchor")?,
                            r.try_get("kind")?,
                            "demote".to_owned(),
                            "the integration was deleted".to_owned(),
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                Self::remove_and_resolve(&mut tx, account_id, &demoted, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_run(&self, run: &RunRecord) -> Result<()> {
                runs::create_run(&self.pool, run).await
            }

            async fn get_run(&self, account_id: &str, run_id: &str) -> Result<RunRecord> {
                runs::get_run(&self.pool, account_id, run_id).await
            }

            async fn list_runs(
                &self,
                account_id: &str,
                integration_id: &str,
                limit: u32,
            ) -> Result<Vec<RunRecord>> {
                runs::list_runs(&self.pool, account_id, integration_id, limit).await
            }

            async fn active_run(
                &self,
                account_id: &str,
                integration_id: &str,
            ) -> Result<Option<RunRecord>> {
                runs::active_run(&self.pool, account_id, integration_id).await
            }

            async fn run_started(
                &self,
                run_id: &str,
                attempt: u32,
                host: &str,
                now: UnixMillis,
            ) -> Result<bool> {
                runs::run_started(&self.pool, run_id, attempt, host, now).await
            }

            async fn fail_run(
                &self,
                run_id: &str,
                attempt: u32,
                error: &str,
                now: UnixMillis,
            ) -> Result<bool> {
                runs::fail_run(&self.pool, run_id, attempt, error, now).await
            }

            async fn stage_batch(
                &self,
                run_id: &str,
                attempt: u32,
                sequence: u32,
                entries: u64,
                payload: &[u8],
                lz4: bool,
            ) -> Result<()> {
                staging::stage_batch(&self.pool, run_id, attempt, sequence, entries, payload, lz4).await
            }

            async fn settled_mark(&self, account_id: &str, run_id: &str) -> Result<SettledMark> {
                runs::settled_mark(&self.pool, account_id, run_id).await
            }

            async fn admit_sign_in(
                &self,
                account_id: &str,
                address: &str,
                now: UnixMillis,
                limits: &SignInLimits,
            ) -> Result<bool> {
                accounts::admit_sign_in(&self.pool, account_id, address, now, limits).await
            }

            async fn sign_in_failed(&self, account_id: &str, address: &str, now: UnixMillis) -> Result<()> {
                accounts::sign_in_failed(&self.pool, account_id, address, now).await
            }

            async fn sign_in_succeeded(&self, account_id: &str, address: &str) -> Result<()> {
                accounts::sign_in_succeeded(&self.pool, account_id, address).await
            }

            async fn returning_users(&self, account_id: &str) -> Result<Returning> {
                plan_inputs::returning_users(&self.pool, account_id).await
            }

            async fn anchor_aliases(&self, account_id: &str) -> Result<Aliases> {
                plan_inputs::anchor_aliases(&self.pool, account_id).await
            }

            async fn adopt(&self, run: &RunRecord, adoptions: &[Adoption], now: UnixMillis) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let mut changes = Vec::new();
                for a in adoptions {
                    let moved = sqlx::query(
                        "UPDATE objects SET integration_id = $3 WHERE account_id = $1 AND anchor = $2 \
                         AND NOT managed AND kind = 'user'",
                    )
                    .bind(&run.account_id)
                    .bind(a.anchor.to_string())
                    .bind(&run.integration_id)
                    .execute(&mut *tx)
                    .await?;
                    if moved.rows_affected() == 0 {
                        continue; // managed again meanwhile, or gone
                    }
                    sqlx::query(
                        "INSERT INTO anchor_aliases (account_id, source_anchor, anchor, run_id, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, source_anchor) DO NOTHING",
                    )
                    .bind(&run.account_id)
                    .bind(a.directory_anchor.to_string())
                    .bind(a.anchor.to_string())
                    .bind(&run.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let dn: Option<String> = sqlx::query_scalar(
                        "SELECT dn FROM objects WHERE account_id = $1 AND anchor = $2",
                    )
                    .bind(&run.account_id)
                    .bind(a.anchor.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    changes.push(Change {
                        anchor: a.anchor,
                        kind: ObjectKind::User,
                        dn: dn.unwrap_or_default(),
                        operation: Operation::Restore,
                        fields: Vec::new(),
                        reason: a.describe(),
                    });
                }
                let start = Self::next_sequence(&mut tx, run).await?;
                Self::insert_changes(&mut tx, run, &changes, start, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn restarted_since(&self, at: UnixMillis) -> Result<bool> {
                staging::restarted_since(&self.pool, at).await
            }

            async fn staged_totals(&self, run_id: &str, attempt: u32) -> Result<(u64, u64)> {
                staging::staged_totals(&self.pool, run_id, attempt).await
            }

            async fn staged_batches(
                &self,
                run_id: &str,
                attempt: u32,
                from: u32,
                limit: u32,
            ) -> Result<Vec<StagedBatch>> {
                staging::staged_batches(&self.pool, run_id, attempt, from, limit).await
            }

            async fn current_objects(
                &self,
                account_id: &str,
                integration_id: &str,
                with_members: bool,
            ) -> Result<Current> {
                use futures::TryStreamExt;
                // Streamed: a resync of a million objects holds their 50
                // bytes each, never the rows.
                let mut current = Current::default();
                let context: Option<Option<String>> = sqlx::query_scalar(
                    "SELECT entry_context FROM integrations WHERE account_id = $1 AND id = $2",
                )
                .bind(account_id)
                .bind(integration_id)
                .fetch_optional(&self.pool)
                .await?;
                current.entry_context = context
                    .flatten()
                    .map(|c| c.parse().map_err(|e| corrupt("entry context", e)))
                    .transpose()?;
                // The first 128 bits of each content hash are what a plan
                // compares (see `ShortHash`).
                let mut rows = sqlx::query(
                    "SELECT anchor, kind, substr(content_hash, 1, 32) AS content_hash, managed, \
                     entry_digest FROM objects WHERE account_id = $1 AND integration_id = $2",
                )
                .bind(account_id)
                .bind(integration_id)
                .fetch(&self.pool);
                while let Some(r) = rows.try_next().await? {
                    let anchor: &str = r.try_get("anchor")?;
                    let kind: &str = r.try_get("kind")?;
                    let hash: &str = r.try_get("content_hash")?;
                    let digest: Option<&str> = r.try_get("entry_digest")?;
                    current.objects.push(CurrentObject {
                        anchor: anchor.parse().map_err(|e| corrupt("object anchor", e))?,
                        kind: ObjectKind::parse(kind).ok_or_else(|| corrupt("object kind", kind))?,
                        content_hash: hash.parse().map_err(|e| corrupt("content hash", e))?,
                        managed: r.try_get("managed")?,
                        entry_digest: digest
                            .map(|d| d.parse().map_err(|e| corrupt("entry digest", e)))
                            .transpose()?,
                    });
                }
                drop(rows);
                if with_members {
                    let mut edges = sqlx::query(
                        "SELECT m.group_anchor, m.member_anchor FROM members m \
                         JOIN objects o ON o.account_id = m.account_id AND o.anchor = m.group_anchor \
                         WHERE m.account_id = $1 AND o.integration_id = $2",
                    )
                    .bind(account_id)
                    .bind(integration_id)
                    .fetch(&self.pool);
                    while let Some(e) = edges.try_next().await? {
                        let group: &str = e.try_get("group_anchor")?;
                        let member: &str = e.try_get("member_anchor")?;
                        current
                            .members
                            .entry(group.parse().map_err(|e| corrupt("group anchor", e))?)
                            .or_default()
                            .push(member.parse().map_err(|e| corrupt("member anchor", e))?);
                    }
                }
                for members in current.members.values_mut() {
                    members.sort();
                }
                Ok(current)
            }

            async fn cursors(&self, account_id: &str, integration_id: &str) -> Result<Vec<CursorRecord>> {
                plan_inputs::cursors(&self.pool, account_id, integration_id).await
            }

            async fn delta_stored(
                &self,
                account_id: &str,
                integration_id: &str,
                anchors: &[ObjectGuid],
            ) -> Result<dirsync_core::delta::Stored> {
                // Anchors are written into the statements: their text is hex
                // digits and dashes only.
                let mut wanted: Vec<ObjectGuid> = anchors.to_vec();
                wanted.sort();
                wanted.dedup();
                let mut all: HashSet<ObjectGuid> = wanted.iter().copied().collect();
                for chunk in wanted.chunks(200) {
                    let list = chunk.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(",");
                    // Groups with them as members.
                    // By the anchors alone, the integration checked here:
                    // given the integration too, SQLite walks the
                    // integration's index, every object of it, instead.
                    let groups = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT DISTINCT m.group_anchor, o.integration_id FROM members m \
                         JOIN objects o ON o.account_id = m.account_id AND o.anchor = m.group_anchor \
                         WHERE m.account_id = $1 AND m.member_anchor IN ({list})"
                    )))
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?;
                    for g in &groups {
                        if g.try_get::<String, _>("integration_id")? != integration_id {
                            continue;
                        }
                        let g: String = g.try_get("group_anchor")?;
                        all.insert(g.parse().map_err(|e| corrupt("group anchor", e))?);
                    }
                    // Objects they manage, by the index of managers.
                    let reports = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT anchor, integration_id FROM objects WHERE account_id = $1 \
                         AND kind <> 'group' AND manager_anchor IN ({list})"
                    )))
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?;
                    for r in &reports {
                        if r.try_get::<String, _>("integration_id")? != integration_id {
                            continue;
                        }
                        let a: String = r.try_get("anchor")?;
                        all.insert(a.parse().map_err(|e| corrupt("object anchor", e))?);
                    }
                }
                let mut all: Vec<ObjectGuid> = all.into_iter().collect();
                all.sort();
                let mut stored = dirsync_core::delta::Stored::new();
                for chunk in all.chunks(200) {
                    let list = chunk.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(",");
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT anchor, integration_id, kind, substr(content_hash, 1, 32) AS content_hash, \
                         managed, entry_digest, record FROM objects \
                         WHERE account_id = $1 AND anchor IN ({list})"
                    )))
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?;
                    for r in &rows {
                        if r.try_get::<String, _>("integration_id")? != integration_id {
                            continue;
                        }
                        let anchor: ObjectGuid = r
                            .try_get::<String, _>("anchor")?
                            .parse()
                            .map_err(|e| corrupt("object anchor", e))?;
                        let kind: String = r.try_get("kind")?;
                        let hash: String = r.try_get("content_hash")?;
                        let digest: Option<String> = r.try_get("entry_digest")?;
                        let record: String = r.try_get("record")?;
                        let current = CurrentObject {
                            anchor,
                            kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt("object kind", &kind))?,
                            content_hash: hash.parse().map_err(|e| corrupt("content hash", e))?,
                            managed: r.try_get("managed")?,
                            entry_digest: digest
                                .map(|d| d.parse().map_err(|e| corrupt("entry digest", e)))
                                .transpose()?,
                        };
                        let record: ObjectRecord =
                            serde_json::from_str(&record).map_err(|e| corrupt("object record", e))?;
                        stored.insert(anchor, dirsync_core::delta::StoredEntry { current, record });
                    }
                }
                Ok(stored)
            }

            async fn delta_removals_since_full(
                &self,
                account_id: &str,
                integration_id: &str,
            ) -> Result<u64> {
                plan_inputs::delta_removals_since_full(&self.pool, account_id, integration_id).await
            }

            async fn begin_apply(
                &self,
                run: &RunRecord,
                now: UnixMillis,
            ) -> Result<Option<Box<dyn crate::Apply>>> {
                let mut tx = self.pool.begin().await?;
                let preview = run.trigger == Trigger::Preview;
                if !preview {
                    Self::lock_account(&mut tx, &run.account_id).await?;
                    <$db as Dialect>::prepare_large_reads(&mut tx).await?;
                }
                // Claim the run: only an unsettled run at this attempt applies.
                if !Self::claim(&mut tx, run).await? {
                    return Ok(None);
                }
                let integration_created_at: i64 = sqlx::query(
                    "SELECT created_at FROM integrations WHERE id = $1",
                )
                .bind(&run.integration_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("created_at"))
                .transpose()?
                .unwrap_or(i64::MAX);
                // Takeovers need addresses owned before: none on a first
                // sync, and a preview takes nothing over.
                let owned_before = !preview && Self::owns_addresses(&mut tx, &run.account_id).await?;
                if !preview {
                    // The claims of every changing object go first; the
                    // owner of each address they touch is worked out once,
                    // at the end.
                    Self::start_touched(&mut tx).await?;
                }
                let sequence = Self::next_sequence(&mut tx, run).await?;
                Ok(Some(Box::new(SqlApply::<$db> {
                    tx,
                    run: run.clone(),
                    now,
                    preview,
                    integration_created_at,
                    owned_before,
                    upserted: HashSet::new(),
                    sieve: AddressSieve::default(),
                    written: 0,
                    sequence,
                    added: 0,
                    updated: 0,
                    warnings: Vec::new(),
                })))
            }

            async fn paused_by(&self, account_id: &str, integration_id: &str) -> Result<Vec<String>> {
                directory::paused_by(&self.pool, account_id, integration_id).await
            }

            async fn pending_removals(
                &self,
                account_id: &str,
                run_id: &str,
            ) -> Result<Vec<(Removal, Option<StoredObject>)>> {
                let rows = sqlx::query(
                    "SELECT p.anchor, p.kind, p.action, p.reason, o.integration_id, o.record, o.managed \
                     FROM pending_removals p LEFT JOIN objects o \
                     ON o.account_id = p.account_id AND o.anchor = p.anchor \
                     WHERE p.account_id = $1 AND p.run_id = $2 ORDER BY o.display_name, p.anchor",
                )
                .bind(account_id)
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let record: Option<String> = r.try_get("record")?;
                        let object = match record {
                            Some(rec) => Some(object_from_parts(
                                r.try_get("integration_id")?,
                                &rec,
                                r.try_get("managed")?,
                            )?),
                            None => None,
                        };
                        Ok((removal_from_parts(
                            r.try_get("anchor")?,
                            r.try_get("kind")?,
                            r.try_get("action")?,
                            r.try_get("reason")?,
                        )?, object))
                    })
                    .collect()
            }

            async fn approve_removals(
                &self,
                account_id: &str,
                run_id: &str,
                expected: Option<u64>,
                now: UnixMillis,
            ) -> Result<RunRecord> {
                let run = self.get_run(account_id, run_id).await?;
                if run.state != RunState::Blocked {
                    return Err(StoreError::Precondition(format!(
                        "run {run_id} is {}, not blocked: it holds no removals to approve",
                        run.state.as_str()
                    )));
                }
                let mut tx = self.pool.begin().await?;
                Self::lock_account(&mut tx, account_id).await?;
                let later = sqlx::query(
                    "SELECT id FROM runs WHERE integration_id = $1 AND id <> $2 \
                     AND (created_at > $3 OR (created_at = $3 AND id > $2)) LIMIT 1",
                )
                .bind(&run.integration_id)
                .bind(run_id)
                .bind(run.created_at)
                .fetch_optional(&mut *tx)
                .await?;
                if later.is_some() {
                    return Err(StoreError::Precondition(format!(
                        "run {run_id} was superseded by a later run of its integration; approve the latest blocked run instead"
                    )));
                }
                let rows = sqlx::query(
                    "SELECT anchor, kind, action, reason FROM pending_removals WHERE run_id = $1 AND account_id = $2",
                )
                .bind(run_id)
                .bind(account_id)
                .fetch_all(&mut *tx)
                .await?;
                let held = rows
                    .iter()
                    .map(|r| removal_from_parts(
                            r.try_get("anchor")?,
                            r.try_get("kind")?,
                            r.try_get("action")?,
                            r.try_get("reason")?,
                        ))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(n) = expected
                    && n != held.len() as u64
                {
                    return Err(StoreError::Precondition(format!(
                        "run {run_id} holds {} removals, not {n}; review them again before approving",
                        held.len()
                    )));
                }
                // Only objects still managed by the run's integration.
                let mut removals = Vec::with_capacity(held.len());
                for r in held {
                    let still = sqlx::query(
                        "SELECT 1 FROM objects WHERE account_id = $1 AND anchor = $2 \
                         AND integration_id = $3 AND managed = TRUE",
                    )
                    .bind(account_id)
                    .bind(r.anchor.to_string())
                    .bind(&run.integration_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if still.is_some() {
                        removals.push(r);
                    }
                }
                let approved = Plan {
                    removals: removals
                        .iter()
                        .map(|r| Removal {
                            reason: format!("approved by an admin: {}", r.reason),
                            ..r.clone()
                        })
                        .collect(),
                    ..Plan::default()
                };
                Self::log_changes(&mut tx, &run, &approved, now).await?;
                Self::remove_and_resolve(&mut tx, account_id, &removals, now).await?;
                let done = sqlx::query(
                    "UPDATE runs SET state = 'succeeded', removed = removed + $2, pending = 0 \
                     WHERE id = $1 AND state = 'blocked'",
                )
                .bind(run_id)
                .bind(i64_of(removals.len() as u64))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Precondition(format!(
                        "run {run_id} was settled concurrently"
                    )));
                }
                sqlx::query("DELETE FROM pending_removals WHERE run_id = $1")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.get_run(account_id, run_id).await
            }

            async fn list_changes(
                &self,
                account_id: &str,
                run_id: Option<&str>,
                anchor: Option<&str>,
                limit: u32,
            ) -> Result<Vec<ChangeRecord>> {
                directory::list_changes(&self.pool, account_id, run_id, anchor, limit).await
            }

            async fn list_objects(
                &self,
                account_id: &str,
                query: &ObjectQuery,
            ) -> Result<Vec<StoredObject>> {
                directory::list_objects(&self.pool, account_id, query).await
            }

            async fn lookup_address(&self, account_id: &str, address: &str) -> Result<StoredObject> {
                directory::lookup_address(&self.pool, account_id, address).await
            }
        }

        #[async_trait]
        impl crate::Apply for SqlApply<$db> {
            async fn upserts(&mut self, adds: &[Upsert], updates: &[Upsert]) -> Result<()> {
                let account = self.run.account_id.clone();
                // An object another integration of the account manages
                // (overlapping Root DNs) stays with it: the integration that
                // synced it first keeps it, so runs never take it back and
                // forth.
                let mut kept: Vec<&Upsert> = adds.iter().collect();
                // The objects the store already holds: every update, and
                // adds of objects another integration synced.
                let mut stored: Vec<String> = updates.iter().map(|u| u.record.anchor.to_string()).collect();
                // Asked per call, not per anchor: with no other integration
                // holding objects in the account (the usual case), an add
                // is an object the store does not hold, and a first sync of
                // a million objects looks none of them up.
                if !self.preview
                    && !adds.is_empty()
                    && SqlStore::<$db>::others_hold_objects(&mut self.tx, &account, &self.run.integration_id).await?
                {
                    let add_anchors: Vec<String> =
                        adds.iter().map(|u| u.record.anchor.to_string()).collect();
                    let mut owners: HashMap<String, String> = HashMap::new();
                    for chunk in add_anchors.chunks(CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            // LEFT JOIN: the objects of a deleted integration stay,
                            // unmanaged, under its id; they are held, and taken over.
                            "SELECT o.anchor, o.managed, o.integration_id, i.name FROM objects o \
                             LEFT JOIN integrations i ON i.id = o.integration_id WHERE o.account_id = ",
                        );
                        qb.push_bind(account.clone());
                        qb.push(" AND o.anchor");
                        push_in(&mut qb, chunk);
                        for r in qb.build().fetch_all(&mut *self.tx).await? {
                            let anchor: String = r.try_get("anchor")?;
                            let integration: String = r.try_get("integration_id")?;
                            if r.try_get("managed")? && integration != self.run.integration_id {
                                let name: Option<String> = r.try_get("name")?;
                                owners.insert(anchor, name.unwrap_or(integration));
                            } else {
                                stored.push(anchor);
                            }
                        }
                    }
                    if !owners.is_empty() {
                        kept.retain(|u| match owners.get(&u.record.anchor.to_string()) {
                            Some(owner) => {
                                self.warnings.push(format!(
                                    "{}: already synced by the integration {owner:?} (overlapping Root DNs); left to it",
                                    u.record.dn
                                ));
                                false
                            }
                            None => true,
                        });
                    }
                }
                let before = SqlStore::<$db>::records_before(
                    &mut self.tx,
                    &account,
                    updates.iter().map(|u| u.record.anchor),
                )
                .await?;
                let changes = change::upsert_changes(kept.iter().copied(), updates, &before);
                self.sequence =
                    SqlStore::<$db>::insert_changes(&mut self.tx, &self.run, &changes, self.sequence, self.now).await?;
                self.added += kept.len() as u64;
                self.updated += updates.len() as u64;
                if self.preview {
                    return Ok(());
                }
                kept.extend(updates);
                if self.owned_before {
                    self.upserted.extend(kept.iter().map(|u| u.record.anchor));
                }
                self.written += kept.len();
                SqlStore::<$db>::write_upserts(
                    &mut self.tx,
                    &self.run,
                    &kept,
                    &stored,
                    &before,
                    self.integration_created_at,
                    // With no address owned before, the owners are worked
                    // out for the addresses the sieve flags.
                    self.owned_before,
                    &mut self.sieve,
                    self.now,
                )
                .await
            }

            async fn entry_digests(&mut self, digests: &[(ObjectGuid, Option<ShortHash>)]) -> Result<()> {
                if self.preview {
                    return Ok(());
                }
                // (anchor, digest) pairs, two binds each, after the account.
                for chunk in digests.chunks(DIGESTS_PER_WRITE) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE objects SET entry_digest = v.column2 FROM (VALUES ",
                    );
                    let mut list = qb.separated(", ");
                    for (anchor, digest) in chunk {
                        list.push("(");
                        list.push_bind_unseparated(anchor.to_string());
                        list.push_unseparated(", ");
                        list.push_bind_unseparated(digest.map(|d| d.to_string()));
                        list.push_unseparated(")");
                    }
                    qb.push(") AS v WHERE objects.account_id = ");
                    qb.push_bind(self.run.account_id.clone());
                    qb.push(" AND objects.anchor = v.column1 AND objects.integration_id = ");
                    qb.push_bind(self.run.integration_id.clone());
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn set_cursor(&mut self, cursor: &CursorRecord, full: bool) -> Result<()> {
                if self.preview {
                    return Ok(());
                }
                if full {
                    sqlx::query("DELETE FROM sync_cursors WHERE account_id = $1 AND integration_id = $2")
                        .bind(&self.run.account_id)
                        .bind(&self.run.integration_id)
                        .execute(&mut *self.tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO sync_cursors (account_id, integration_id, source, server, value, run_id, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (integration_id, source, server) DO UPDATE SET \
                     value = excluded.value, run_id = excluded.run_id, updated_at = excluded.updated_at",
                )
                .bind(&self.run.account_id)
                .bind(&self.run.integration_id)
                .bind(&cursor.source)
                .bind(&cursor.server)
                .bind(&cursor.value)
                .bind(&cursor.run_id)
                .bind(cursor.updated_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn finish(
                self: Box<Self>,
                plan: &Plan,
                collected: u64,
                clock: &dyn dirsync_core::Clock,
            ) -> Result<ApplyOutcome> {
                let mut this = *self;
                let account = this.run.account_id.clone();
                let before = SqlStore::<$db>::records_before(
                    &mut this.tx,
                    &account,
                    plan.removals.iter().chain(&plan.held).map(|r| r.anchor),
                )
                .await?;
                let changes = change::removal_changes(plan, &before);
                SqlStore::<$db>::insert_changes(&mut this.tx, &this.run, &changes, this.sequence, this.now).await?;
                let blocked = matches!(plan.hold, Some(Hold::Guard { .. }));
                let counts = RunCounts {
                    collected,
                    added: this.added,
                    updated: this.updated,
                    removed: plan.removals.len() as u64,
                    unchanged: plan.unchanged,
                    // Nothing waits for approval after a preview.
                    pending: if blocked && !this.preview { plan.held.len() as u64 } else { 0 },
                };
                let mut warnings = plan.warnings.clone();
                warnings.append(&mut this.warnings);
                let hold_reason = plan.hold.as_ref().map(Hold::describe).unwrap_or_default();
                if this.preview {
                    SqlStore::<$db>::settle(&mut this.tx, &this.run, RunState::Succeeded, &counts, &warnings, &hold_reason, clock.now())
                        .await?;
                    this.tx.commit().await?;
                    return Ok(ApplyOutcome::Applied { counts, warnings });
                }
                SqlStore::<$db>::remove(&mut this.tx, &account, &plan.removals, &before, this.now).await?;
                if SqlStore::<$db>::statistics_stale(&mut this.tx, this.written).await? {
                    // Statistics that include what this transaction wrote:
                    // without them the database plans the joins below for
                    // the tables as they were.
                    <$db as Dialect>::analyze_applied(&mut this.tx).await?;
                }
                // Without claims before, the sieve named every address that
                // may be claimed twice, unless there were too many.
                let touched = this.owned_before || !this.sieve.overflowed();
                SqlStore::<$db>::resolve_addresses(&mut this.tx, &account, this.owned_before, touched, &this.upserted, &mut warnings)
                    .await?;
                // Standing conflicts: addresses this integration's objects
                // claim that another object owns, reported on every run.
                // From the contested owners' claims (a partial index) out:
                // the CROSS JOIN keeps SQLite from starting at every claim
                // of the account instead (PostgreSQL orders joins itself).
                let lost = sqlx::query(
                    "SELECT c.address, o.dn, w.dn AS owner_dn FROM address_claims a \
                     CROSS JOIN address_claims c \
                     JOIN objects o ON o.account_id = c.account_id AND o.anchor = c.anchor \
                     JOIN objects w ON w.account_id = a.account_id AND w.anchor = a.anchor \
                     WHERE c.account_id = a.account_id AND c.address = a.address \
                     AND a.account_id = $1 AND a.owner AND a.contested AND o.integration_id = $2 \
                     AND o.managed = TRUE AND a.anchor <> c.anchor ORDER BY c.address",
                )
                .bind(&account)
                .bind(&this.run.integration_id)
                .fetch_all(&mut *this.tx)
                .await?;
                let mut seen: HashSet<String> = warnings.iter().cloned().collect();
                for r in &lost {
                    let (address, dn, owner): (String, String, String) =
                        (r.try_get("address")?, r.try_get("dn")?, r.try_get("owner_dn")?);
                    let line = format!(
                        "{dn}: address {address} belongs to {owner}, whose claim takes precedence; it was not linked here"
                    );
                    if seen.insert(line.clone()) {
                        warnings.push(line);
                    }
                }

                // The deletion guard: the exact set held for approval.
                if blocked {
                    for removal in &plan.held {
                        sqlx::query(
                            "INSERT INTO pending_removals (run_id, account_id, anchor, kind, action, reason) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        )
                        .bind(&this.run.id)
                        .bind(&account)
                        .bind(removal.anchor.to_string())
                        .bind(removal.kind.as_str())
                        .bind(action_str(removal.action))
                        .bind(&removal.reason)
                        .execute(&mut *this.tx)
                        .await?;
                    }
                }

                let state = if blocked { RunState::Blocked } else { RunState::Succeeded };
                this.entry_digests(&plan.entry_digests).await?;
                sqlx::query("UPDATE integrations SET entry_context = $1 WHERE account_id = $2 AND id = $3")
                    .bind(plan.entry_context.map(|c| c.to_string()))
                    .bind(&account)
                    .bind(&this.run.integration_id)
                    .execute(&mut *this.tx)
                    .await?;
                SqlStore::<$db>::settle(&mut this.tx, &this.run, state, &counts, &warnings, &hold_reason, clock.now()).await?;
                this.tx.commit().await?;
                Ok(ApplyOutcome::Applied { counts, warnings })
            }
        }
    };
}

store_impl!(sqlx::Postgres);
store_impl!(sqlx::Sqlite);
