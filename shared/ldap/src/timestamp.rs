//! Delta reads of generic LDAP directories without content
//! synchronization (no syncprov overlay): the entries whose
//! `modifyTimestamp` is at or after a cursor, read whole.
//!
//! The cursor is a time on the directory's own clock, read from its
//! rootDSE (`currentTime`) or from cn=Monitor (`cn=Current,cn=Time`,
//! `monitorTimestamp`), less an overlap for writes that commit after the
//! time they carry. A directory that tells neither is polled by dirsync's
//! clock, with a wider overlap for the two clocks' drift. A change read
//! twice is harmless (the reconciler writes only what differs from the
//! store); a change never read would be a silent gap.
//!
//! Deletions and moves out of the Root DN leave nothing to find by
//! timestamp: they wait for the next full sync, and every run says so.

use dirsync_core::{DirectorySchema, Dn, LdapSchema, UnixMillis};
use dirsync_proto::bus::{self, DirectoryEntry};

use crate::delta::{DeltaError, DeltaSummary};
use crate::entry::{EntryReader, RawEntry};
use crate::{LdapError, Session};

/// The cursor source of modifyTimestamp polling.
pub const TIMESTAMP_SOURCE: &str = "modify_timestamp";

/// What every run of an integration polled by modifyTimestamp says.
pub const TIMESTAMP_NOTE: &str = "delta syncs read the entries whose modifyTimestamp changed, without content synchronization (RFC 4533; OpenLDAP: the syncprov overlay): entries deleted or moved out of the Root DN are removed by the next full sync";

/// Said when the directory's clock cannot be read.
pub const LOCAL_CLOCK_NOTE: &str = "the directory tells no time (no currentTime in its rootDSE, no cn=Monitor the bind account may read), so modifyTimestamp polling trusts dirsync's clock to within 10 minutes of the directory's";

/// How far before the directory's time a cursor starts: a write carries
/// the time it began, and may commit after a read that started later.
const DIRECTORY_CLOCK_OVERLAP_MS: i64 = 60_000;
/// How far before dirsync's time a cursor starts when the directory's own
/// clock is unknown: its drift from the directory's, and the overlap.
const LOCAL_CLOCK_OVERLAP_MS: i64 = 10 * 60_000;

/// Where a cursor's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The directory's own clock.
    Directory,
    /// dirsync's clock: the directory tells no time.
    Local,
}

/// A generalizedTime (`YYYYMMDDHHMMSS[.fraction]Z`, RFC 4517 3.3.13) in
/// UTC, as Unix milliseconds (whole seconds). Local times and offsets are
/// refused: a cursor must mean one instant.
pub fn parse_generalized_time(text: &str) -> Option<UnixMillis> {
    let body = text.strip_suffix('Z')?;
    let (digits, fraction) = match body.split_once(['.', ',']) {
        Some((d, f)) => (d, Some(f)),
        None => (body, None),
    };
    if digits.len() != 14
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let at = chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok()?;
    Some(at.and_utc().timestamp() * 1000)
}

/// `at` as a generalizedTime in whole seconds, rounded down: the form an
/// OpenLDAP `modifyTimestamp` compares with.
pub fn generalized_time(at: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .format("%Y%m%d%H%M%SZ")
        .to_string()
}

/// The cursor of a read that began at `started` by `source`'s clock.
pub fn cursor_at(started: UnixMillis, source: TimeSource) -> Vec<u8> {
    let overlap = match source {
        TimeSource::Directory => DIRECTORY_CLOCK_OVERLAP_MS,
        TimeSource::Local => LOCAL_CLOCK_OVERLAP_MS,
    };
    generalized_time(started.saturating_sub(overlap)).into_bytes()
}

/// The filter of a delta read: the objects dirsync reads, changed at or
/// after `since`.
pub fn changed_since(object_filter: &str, since: &str) -> String {
    format!(
        "(&{object_filter}(modifyTimestamp>={}))",
        ldap3::ldap_escape(since)
    )
}

/// Where a delta read from a cursor starts, and what it says.
#[derive(Debug)]
pub struct Baseline {
    pub cursor: Vec<u8>,
    pub notes: Vec<String>,
}

impl Session {
    /// The directory's clock: its rootDSE's `currentTime` (Active
    /// Directory and others), or cn=Monitor's current time (OpenLDAP).
    /// `None` when it tells neither to the bind account; connection
    /// failures are errors.
    pub async fn directory_time(&mut self) -> Result<Option<UnixMillis>, LdapError> {
        let root = match self
            .base_entry("", &["currentTime", "monitorContext"])
            .await
        {
            Ok(root) => root,
            Err(LdapError::Search(_)) => None,
            Err(e) => return Err(e),
        };
        let text = |e: &RawEntry, name: &str| e.first_text(name);
        if let Some(now) = root
            .as_ref()
            .and_then(|r| text(r, "currentTime"))
            .and_then(|t| parse_generalized_time(&t))
        {
            return Ok(Some(now));
        }
        let monitor = root
            .as_ref()
            .and_then(|r| text(r, "monitorContext"))
            .unwrap_or_else(|| "cn=Monitor".to_owned());
        let current = format!("cn=Current,cn=Time,{monitor}");
        match self.base_entry(&current, &["monitorTimestamp"]).await {
            Ok(entry) => Ok(entry
                .and_then(|e| text(&e, "monitorTimestamp"))
                .and_then(|t| parse_generalized_time(&t))),
            Err(LdapError::Search(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The time a read starting now starts at, and by which clock:
    /// the directory's, or `local_now` when it tells none.
    async fn read_start(
        &mut self,
        local_now: UnixMillis,
    ) -> Result<(UnixMillis, TimeSource), LdapError> {
        Ok(match self.directory_time().await? {
            Some(at) => (at, TimeSource::Directory),
            None => (local_now, TimeSource::Local),
        })
    }

    /// The cursor of the deltas after a full read that starts now.
    pub async fn timestamp_baseline(
        &mut self,
        local_now: UnixMillis,
    ) -> Result<Baseline, LdapError> {
        let (at, source) = self.read_start(local_now).await?;
        let mut notes = vec![TIMESTAMP_NOTE.to_owned()];
        if source == TimeSource::Local {
            notes.push(LOCAL_CLOCK_NOTE.to_owned());
        }
        Ok(Baseline {
            cursor: cursor_at(at, source),
            notes,
        })
    }

    /// Reads the entries under `root_dn` changed since the cursor `since`
    /// and hands each to `sink` as a delta entry, whole, its links
    /// resolved to entryUUIDs as content synchronization resolves them.
    ///
    /// Nothing changed: one search, and the cursor stays (whatever
    /// changes during the search carries a time after it). Something
    /// changed: the directory's clock is read after the search, and the
    /// next cursor is where the search began by that clock (less the
    /// overlap), the search's length measured on `clock`. More than
    /// `max_entries` changes end the read: a full read is cheaper.
    #[allow(clippy::too_many_arguments)]
    pub async fn collect_modified<F, Fut>(
        &mut self,
        schema: &LdapSchema,
        root_dn: &Dn,
        include_contacts: bool,
        since: &[u8],
        clock: &dyn dirsync_core::Clock,
        max_entries: usize,
        mut sink: F,
    ) -> Result<DeltaSummary, DeltaError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let since_text = std::str::from_utf8(since)
            .ok()
            .filter(|t| parse_generalized_time(t).is_some())
            .ok_or_else(|| {
                DeltaError::Unavailable(
                    "the stored modifyTimestamp cursor is not a generalizedTime".into(),
                )
            })?;
        let began = clock.now();
        let mut changed = Vec::new();
        let read = self
            .search_entries(
                root_dn.as_str(),
                &changed_since(&schema.filter(include_contacts), since_text),
                schema.requested_attributes(),
                Default::default(),
                1000,
                |e| {
                    changed.push(e);
                    std::future::ready(if changed.len() > max_entries {
                        Err(LdapError::Search("too many changes".into()))
                    } else {
                        Ok(())
                    })
                },
            )
            .await;
        if changed.len() > max_entries {
            return Err(DeltaError::Unavailable(format!(
                "more than {max_entries} objects changed since the cursor: a full read is cheaper"
            )));
        }
        let incomplete = read?.incomplete_reasons;
        if !incomplete.is_empty() {
            // A poll that missed a page would skip its changes for good.
            return Err(DeltaError::Unavailable(format!(
                "the modifyTimestamp read was incomplete: {}",
                incomplete.join("; ")
            )));
        }
        let mut out = DeltaSummary::default();
        out.summary.notes.push(TIMESTAMP_NOTE.to_owned());
        if changed.is_empty() {
            out.cookie = since.to_vec();
            return Ok(out);
        }
        let (now, source) = self.read_start(clock.now()).await?;
        let searched = clock.now().saturating_sub(began).max(0);
        if source == TimeSource::Local {
            out.summary.notes.push(LOCAL_CLOCK_NOTE.to_owned());
        }
        out.cookie = cursor_at(now.saturating_sub(searched), source);

        let directory = DirectorySchema::Ldap(schema.clone());
        let reader = EntryReader::new(&directory);
        let mut entries = Vec::new();
        for raw in changed {
            match reader.read(raw) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(%reason, "directory entry skipped");
                    out.summary.incomplete_reasons.push(reason);
                }
            }
        }
        self.resolve_links(schema, root_dn, include_contacts, &mut entries)
            .await?;
        for mut e in entries {
            e.delta = bus::DeltaChange::Changed as i32;
            sink(e).await?;
            out.summary.entries += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_times_are_read_in_utc_and_junk_is_refused() {
        let at = parse_generalized_time("20261205081500Z").expect("a time");
        assert_eq!(generalized_time(at), "20261205081500Z");
        // Active Directory's currentTime carries a fraction.
        assert_eq!(parse_generalized_time("20261205081500.0Z"), Some(at));
        assert_eq!(parse_generalized_time("20261205081500,123Z"), Some(at));
        for junk in [
            "",
            "Z",
            "20261205081500",
            "20261205081500+0100",
            "2026120508150Z",
            "20261305081500Z",
            "20261205081500.Z",
            "2026120508150xZ",
            "20261205081500.1aZ",
        ] {
            assert_eq!(parse_generalized_time(junk), None, "{junk}");
        }
    }

    #[test]
    fn cursors_start_before_the_read_by_the_clock_they_trust() {
        let at = parse_generalized_time("20261205081500Z").expect("a time");
        assert_eq!(
            cursor_at(at + 999, TimeSource::Directory),
            b"20261205081400Z".to_vec()
        );
        assert_eq!(
            cursor_at(at, TimeSource::Local),
            b"20261205080500Z".to_vec()
        );
    }

    #[test]
    fn the_filter_escapes_the_cursor() {
        assert_eq!(
            changed_since("(objectClass=inetOrgPerson)", "20261205081500Z"),
            "(&(objectClass=inetOrgPerson)(modifyTimestamp>=20261205081500Z))"
        );
        assert!(changed_since("(a=b)", "x)(y=*").contains("x\\29\\28y=\\2a"));
    }
}
