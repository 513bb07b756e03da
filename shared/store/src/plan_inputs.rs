//! What a plan reads of the store: the integration's objects as they are
//! (all of them for a full run, those a delta touches for a delta run),
//! the delta cursors, and the removals deltas made since the last full
//! run (the deletion guard counts them). Returning users are read in
//! [`crate::returning`].

use std::collections::HashSet;

use dirsync_core::delta::{Stored, StoredEntry};
use dirsync_core::plan::{Current, CurrentObject};
use dirsync_core::{ObjectGuid, ObjectKind, ObjectRecord};

use crate::dialect::Dialect;
use crate::row::{Row, query, query_built};
use crate::{CursorRecord, Result};
use crate::{corrupt, u64_of};

type Pool<D> = sqlx::Pool<D>;

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

/// What the store holds of an integration's objects, as a plan compares
/// them. Streamed: a resync of a million objects holds their 50 bytes
/// each, never the rows.
pub(crate) async fn current_objects<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
    with_members: bool,
) -> Result<Current> {
    let mut current = Current::default();
    let context = query("SELECT entry_context FROM integrations WHERE account_id = $1 AND id = $2")
        .bind(account_id)
        .bind(integration_id)
        .fetch_optional(pool)
        .await?;
    current.entry_context = match context {
        Some(r) => r
            .get::<Option<String>>("entry_context")?
            .map(|c| c.parse().map_err(|e| corrupt("entry context", e)))
            .transpose()?,
        None => None,
    };
    // The first 128 bits of each content hash are what a plan compares
    // (see `ShortHash`).
    let objects = &mut current.objects;
    query(
        "SELECT anchor, kind, substr(content_hash, 1, 32) AS content_hash, managed, \
         entry_digest FROM objects WHERE account_id = $1 AND integration_id = $2",
    )
    .bind(account_id)
    .bind(integration_id)
    .for_each(pool, |mut r| {
        objects.push(current_object(&mut r)?);
        Ok(())
    })
    .await?;
    if with_members {
        let members = &mut current.members;
        query(
            "SELECT m.group_anchor, m.member_anchor FROM members m \
             JOIN objects o ON o.account_id = m.account_id AND o.anchor = m.group_anchor \
             WHERE m.account_id = $1 AND o.integration_id = $2",
        )
        .bind(account_id)
        .bind(integration_id)
        .for_each(pool, |mut r| {
            let group: String = r.take("group_anchor")?;
            let member: String = r.take("member_anchor")?;
            members
                .entry(group.parse().map_err(|e| corrupt("group anchor", e))?)
                .or_default()
                .push(member.parse().map_err(|e| corrupt("member anchor", e))?);
            Ok(())
        })
        .await?;
    }
    for members in current.members.values_mut() {
        members.sort();
    }
    Ok(current)
}

/// A row's (anchor, kind, content_hash, managed, entry_digest) as a plan
/// compares an object.
fn current_object(r: &mut Row) -> Result<CurrentObject> {
    let anchor: String = r.take("anchor")?;
    let kind: String = r.take("kind")?;
    let hash: String = r.take("content_hash")?;
    let digest: Option<String> = r.take("entry_digest")?;
    Ok(CurrentObject {
        anchor: anchor.parse().map_err(|e| corrupt("object anchor", e))?,
        kind: ObjectKind::parse(&kind).ok_or_else(|| corrupt("object kind", &kind))?,
        content_hash: hash.parse().map_err(|e| corrupt("content hash", e))?,
        managed: r.get("managed")?,
        entry_digest: digest
            .map(|d| d.parse().map_err(|e| corrupt("entry digest", e)))
            .transpose()?,
    })
}

/// What a delta run compares: the stored objects of `anchors`, with the
/// groups of the integration that have them as members and the objects
/// they manage (whose records name them).
pub(crate) async fn delta_stored<D: Dialect>(
    pool: &Pool<D>,
    account_id: &str,
    integration_id: &str,
    anchors: &[ObjectGuid],
) -> Result<Stored> {
    // Anchors are written into the statements: an ObjectGuid's text is hex
    // digits and dashes only.
    let list_of = |chunk: &[ObjectGuid]| {
        chunk
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut wanted: Vec<ObjectGuid> = anchors.to_vec();
    wanted.sort();
    wanted.dedup();
    let mut all: HashSet<ObjectGuid> = wanted.iter().copied().collect();
    for chunk in wanted.chunks(200) {
        let list = list_of(chunk);
        // Groups of the integration with them as members. By the anchors alone, the
        // integration checked here: given the integration too, SQLite
        // walks the integration's index, every object of it, instead.
        let groups = format!(
            "SELECT DISTINCT m.group_anchor AS anchor, o.integration_id FROM members m \
             JOIN objects o ON o.account_id = m.account_id AND o.anchor = m.group_anchor \
             WHERE m.account_id = $1 AND m.member_anchor IN ({list})"
        );
        // Objects they manage, by the index of managers.
        let reports = format!(
            "SELECT anchor, integration_id FROM objects WHERE account_id = $1 \
             AND kind <> 'group' AND manager_anchor IN ({list})"
        );
        for sql in [groups, reports] {
            for r in query_built(sql).bind(account_id).fetch_all(pool).await? {
                if r.get::<String>("integration_id")? != integration_id {
                    continue;
                }
                let a: String = r.get("anchor")?;
                all.insert(a.parse().map_err(|e| corrupt("object anchor", e))?);
            }
        }
    }
    let mut all: Vec<ObjectGuid> = all.into_iter().collect();
    all.sort();
    let mut stored = Stored::new();
    for chunk in all.chunks(200) {
        let rows = query_built(format!(
            "SELECT anchor, integration_id, kind, substr(content_hash, 1, 32) AS content_hash, \
             managed, entry_digest, record FROM objects \
             WHERE account_id = $1 AND anchor IN ({})",
            list_of(chunk)
        ))
        .bind(account_id)
        .fetch_all(pool)
        .await?;
        for mut r in rows {
            if r.get::<String>("integration_id")? != integration_id {
                continue;
            }
            let current = current_object(&mut r)?;
            let record: String = r.take("record")?;
            let record: ObjectRecord =
                serde_json::from_str(&record).map_err(|e| corrupt("object record", e))?;
            stored.insert(current.anchor, StoredEntry { current, record });
        }
    }
    Ok(stored)
}
