//! Delta reads of Active Directory: the DirSync control
//! (1.2.840.113556.1.4.841, MS-ADTS 3.1.1.3.4.1.3) names what changed since
//! a cookie, and the changed objects are then read whole under the Root DN,
//! their links (member, manager, memberOf, directReports) as objectGUIDs
//! through the extended DN control (1.2.840.113556.1.4.529).
//!
//! DirSync answers for the whole domain naming context: an object changed
//! outside the Root DN is reported too, and one that moved out of it is
//! recognised by not being found under the Root DN. Tombstones
//! (`isDeleted`) name deleted objects. With LDAP_DIRSYNC_INCREMENTAL_VALUES
//! a group whose only change is its members arrives as the values added
//! (`member;range=1-1`) and removed (`member;range=0-0`), so a change to
//! one member of a large group is one edge, not the group's member list.

use std::collections::HashMap;

use bytes::BytesMut;
use ldap3::Scope;
use ldap3::asn1::{ASNTag, Integer, OctetString, PL, Sequence, StructureTag, Tag, TagClass, Types};
use ldap3::controls::RawControl;

use dirsync_core::{DirectorySchema, Dn, ObjectGuid};
use dirsync_proto::bus::{self, DirectoryEntry};

use crate::entry::{ATTRIBUTES, EntryReader, RawEntry};
use crate::{CollectionSummary, LdapError, MEMBER_RANGE, Session, object_filter};

pub const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
pub const EXTENDED_DN_OID: &str = "1.2.840.113556.1.4.529";
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// The cursor source of uSNChanged polling: the value is the domain
/// controller's highestCommittedUSN, in decimal digits.
pub const USN_SOURCE: &str = "usn";
/// LDAP_DIRSYNC_INCREMENTAL_VALUES.
const INCREMENTAL_VALUES: u32 = 0x8000_0000;
/// LDAP_DIRSYNC_OBJECT_SECURITY.
const OBJECT_SECURITY: u32 = 0x1;

/// How DirSync is allowed to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSyncMode {
    /// The bind account holds "Replicating Directory Changes": every
    /// change, deletions included.
    Replication,
    /// Without that right, DirSync with object security: the changes of
    /// what the account may read. Tombstones are not readable to it, so
    /// deletions wait for the next full sync.
    ObjectSecurity,
}

impl DirSyncMode {
    /// The cursor source a cookie of this mode is stored as.
    pub fn source(self) -> &'static str {
        match self {
            Self::Replication => "dirsync",
            Self::ObjectSecurity => "dirsync-object-security",
        }
    }

    pub fn from_source(source: &str) -> Option<Self> {
        match source {
            "dirsync" => Some(Self::Replication),
            "dirsync-object-security" => Some(Self::ObjectSecurity),
            _ => None,
        }
    }

    fn flags(self) -> u32 {
        match self {
            Self::Replication => INCREMENTAL_VALUES,
            Self::ObjectSecurity => INCREMENTAL_VALUES | OBJECT_SECURITY,
        }
    }
}

/// What a run says when DirSync reads with object security.
pub const OBJECT_SECURITY_NOTE: &str = "the bind account lacks \"Replicating Directory Changes\" on the domain, so delta syncs read with object security (LDAP_DIRSYNC_OBJECT_SECURITY) and do not see deletions: objects deleted in AD are removed by the next full sync. Grant the right to the bind account to have deletions within minutes";
/// What a run says when deltas poll uSNChanged and the bind account cannot
/// read tombstones.
pub const USN_NO_TOMBSTONES_NOTE: &str = "delta syncs poll uSNChanged and the bind account may not read CN=Deleted Objects, so they do not see deletions: objects deleted in AD are removed by the next full sync";
/// The tombstone lifetime of a forest that sets none.
pub const DEFAULT_TOMBSTONE_LIFETIME_DAYS: u32 = 60;
/// Bytes a DirSync page may hold, at most: AD's own cap is 10 MB.
const DIRSYNC_MAX_BYTES: i64 = 1 << 20;
/// The objects a delta asks the domain about. Tombstones keep objectClass
/// but lose objectCategory: computers (objectClass user) are told apart
/// when read whole.
const CHANGED_CLASSES: &str = "(|(objectClass=user)(objectClass=group)(objectClass=contact))";
/// objectGUIDs per read of changed objects.
const REREAD_CHUNK: usize = 100;

/// The domain controller a session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainController {
    /// The domain naming context (`DC=corp,DC=example,DC=com`): where
    /// DirSync reads.
    pub naming_context: String,
    /// The DC's invocationId: a DirSync cookie is taken on one DC.
    pub invocation_id: String,
    /// The configuration naming context, where the tombstone lifetime is.
    pub configuration_context: Option<String>,
    /// Its highestCommittedUSN when asked: every change it has committed
    /// has a uSNChanged at most this.
    pub highest_committed_usn: Option<u64>,
}

/// Why a delta could not be read, so that the run reads in full instead.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The directory refused the change stream or its cookie.
    #[error("{0}")]
    Unavailable(String),
    /// The bind account may not read the change stream this way.
    #[error("{0}")]
    NotPermitted(String),
    #[error(transparent)]
    Ldap(#[from] LdapError),
}

/// How a delta read ended.
#[derive(Debug, Default)]
pub struct DeltaSummary {
    pub summary: CollectionSummary,
    /// Where the next delta starts.
    pub cookie: Vec<u8>,
}

fn dirsync_control(flags: u32, cookie: &[u8]) -> RawControl {
    // The flags travel as the 32-bit signed integer Windows' own client
    // sends (0x80000000 is negative there).
    let flags = i64::from(flags as i32);
    encoded_control(
        DIRSYNC_OID,
        true,
        vec![
            Tag::Integer(Integer {
                inner: flags,
                ..Default::default()
            }),
            Tag::Integer(Integer {
                inner: DIRSYNC_MAX_BYTES,
                ..Default::default()
            }),
            Tag::OctetString(OctetString {
                inner: cookie.to_vec(),
                ..Default::default()
            }),
        ],
    )
}

/// Extended DNs in string form: `<GUID=…>;<SID=…>;CN=…`.
pub(crate) fn extended_dn_control() -> RawControl {
    encoded_control(
        EXTENDED_DN_OID,
        false,
        vec![Tag::Integer(Integer {
            inner: 1,
            ..Default::default()
        })],
    )
}

/// LDAP_SERVER_SHOW_DELETED_OID: tombstones are found too (where the bind
/// account may read them).
pub(crate) fn show_deleted_control() -> RawControl {
    RawControl {
        ctype: SHOW_DELETED_OID.to_owned(),
        crit: false,
        val: None,
    }
}

pub(crate) fn encoded_control(oid: &str, crit: bool, inner: Vec<Tag>) -> RawControl {
    let value = Tag::Sequence(Sequence {
        inner,
        ..Default::default()
    })
    .into_structure();
    let mut buf = BytesMut::new();
    ldap3::asn1::write::encode_into(&mut buf, value).expect("a control value encodes");
    RawControl {
        ctype: oid.to_owned(),
        crit,
        val: Some(buf.to_vec()),
    }
}

/// The DirSync response value: `SEQUENCE { moreResults INTEGER, unused
/// INTEGER, cookie OCTET STRING }`. `None` when it is not that.
pub fn parse_dirsync_response(value: &[u8]) -> Option<(bool, Vec<u8>)> {
    let tag = crate::entry::parse_ber(value)?;
    let StructureTag {
        class: TagClass::Universal,
        payload: PL::C(parts),
        ..
    } = tag
    else {
        return None;
    };
    let mut parts = parts.into_iter();
    let more = parts.next()?;
    let _unused = parts.next()?;
    let cookie = parts.next()?;
    let more = match more {
        StructureTag {
            id,
            payload: PL::P(bytes),
            ..
        } if id == Types::Integer as u64 => bytes.iter().any(|b| *b != 0),
        _ => return None,
    };
    match cookie {
        StructureTag {
            id,
            payload: PL::P(bytes),
            ..
        } if id == Types::OctetString as u64 => Some((more, bytes)),
        _ => None,
    }
}

/// An extended DN (`<GUID=…>;<SID=…>;CN=…`) split into its objectGUID and
/// its DN; a plain DN comes back with no GUID.
pub fn split_extended_dn(value: &str) -> (Option<ObjectGuid>, &str) {
    let mut rest = value;
    let mut guid = None;
    while let Some(part) = rest.strip_prefix('<') {
        let Some((inner, after)) = part.split_once('>') else {
            break;
        };
        if let Some(g) = inner.strip_prefix("GUID=") {
            guid = g.parse().ok();
        }
        rest = after.strip_prefix(';').unwrap_or(after);
    }
    (guid, rest)
}

/// The GUIDs of an attribute's extended-DN values, the values rewritten
/// as plain DNs (as a full read gives them).
fn take_links(entry: &mut RawEntry, name: &str) -> Vec<ObjectGuid> {
    let mut guids = Vec::new();
    for (key, values) in entry.attrs.iter_mut() {
        if !key.eq_ignore_ascii_case(name) {
            continue;
        }
        for v in values.iter_mut() {
            let text = String::from_utf8_lossy(v);
            let (guid, dn) = split_extended_dn(&text);
            guids.extend(guid);
            let dn = dn.as_bytes().to_vec();
            *v = dn;
        }
    }
    guids
}

fn guid_of(entry: &RawEntry) -> Option<ObjectGuid> {
    entry
        .values("objectGUID")
        .next()
        .and_then(|b| ObjectGuid::from_ad_bytes(b).ok())
}

/// Whether a DirSync or uSNChanged entry is a tombstone.
fn is_deleted(entry: &RawEntry) -> bool {
    entry
        .values("isDeleted")
        .any(|v| v.eq_ignore_ascii_case(b"TRUE"))
}

/// What one DirSync entry says.
#[derive(Debug, PartialEq, Eq)]
enum Reported {
    Deleted(ObjectGuid),
    LeftScope(ObjectGuid),
    Members {
        group: ObjectGuid,
        added: Vec<ObjectGuid>,
        removed: Vec<ObjectGuid>,
    },
    /// Read it whole.
    Changed(ObjectGuid),
}

/// Attributes a DirSync entry always carries, changed or not.
const ALWAYS: &[&str] = &["objectguid", "instancetype", "parentguid"];

fn classify(mut entry: RawEntry, root_dn: &Dn) -> Option<Reported> {
    let guid = guid_of(&entry)?;
    if is_deleted(&entry) {
        return Some(Reported::Deleted(guid));
    }
    let (_, dn) = split_extended_dn(&entry.dn);
    let in_root = Dn::parse(dn).is_ok_and(|dn| dn.is_within(root_dn));
    if !in_root {
        return Some(Reported::LeftScope(guid));
    }
    let ranged = |k: &str| k.to_ascii_lowercase().starts_with("member;range=");
    let members_only = entry.attrs.iter().any(|(k, _)| ranged(k))
        && entry.attrs.iter().all(|(k, v)| {
            v.is_empty() || ranged(k) || ALWAYS.iter().any(|a| k.eq_ignore_ascii_case(a))
        });
    if !members_only {
        return Some(Reported::Changed(guid));
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for (key, values) in std::mem::take(&mut entry.attrs) {
        if !ranged(&key) {
            continue;
        }
        // `member;range=1-1`: values added; `member;range=0-0`: removed.
        let target = if key.ends_with("=0-0") {
            &mut removed
        } else {
            &mut added
        };
        for v in values {
            let text = String::from_utf8_lossy(&v);
            let (g, _) = split_extended_dn(&text);
            match g {
                Some(g) => target.push(g),
                // A value without its GUID cannot be linked: read the
                // group whole.
                None => return Some(Reported::Changed(guid)),
            }
        }
    }
    Some(Reported::Members {
        group: guid,
        added,
        removed,
    })
}

/// Where an object found changed by uSNChanged is.
#[derive(Debug, PartialEq, Eq)]
enum Polled {
    Deleted,
    /// In the Root DN: read it whole.
    InRoot,
    Outside,
}

fn classify_polled(entry: &RawEntry, root_dn: &Dn) -> Option<(ObjectGuid, Polled)> {
    let guid = guid_of(entry)?;
    let (_, dn) = split_extended_dn(&entry.dn);
    let polled = if is_deleted(entry) {
        Polled::Deleted
    } else if Dn::parse(dn).is_ok_and(|dn| dn.is_within(root_dn)) {
        Polled::InRoot
    } else {
        Polled::Outside
    };
    Some((guid, polled))
}

/// The USN a uSNChanged cursor holds.
pub fn usn_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn delta_entry(kind: bus::DeltaChange, guid: ObjectGuid) -> DirectoryEntry {
    DirectoryEntry {
        object_guid: guid.to_string(),
        delta: kind as i32,
        ..Default::default()
    }
}

/// `(objectGUID=\xx…)` for one GUID, in AD's byte order.
fn guid_filter(guid: &ObjectGuid) -> String {
    let mut f = String::from("(objectGUID=");
    for b in guid.to_ad_bytes() {
        f.push_str(&format!("\\{b:02x}"));
    }
    f.push(')');
    f
}

impl Session {
    /// The naming context and invocationId of the DC this session is bound
    /// to (rootDSE `defaultNamingContext`, and `invocationId` of its
    /// `dsServiceName`).
    pub async fn domain_controller(&mut self) -> Result<DomainController, LdapError> {
        let root = self
            .base_entry(
                "",
                &[
                    "defaultNamingContext",
                    "dsServiceName",
                    "highestCommittedUSN",
                    "configurationNamingContext",
                ],
            )
            .await?
            .ok_or_else(|| LdapError::Search("the rootDSE returned nothing".into()))?;
        let naming_context = root.first_text("defaultNamingContext").ok_or_else(|| {
            LdapError::Search(
                "the rootDSE names no defaultNamingContext: not Active Directory".into(),
            )
        })?;
        let service = root
            .first_text("dsServiceName")
            .ok_or_else(|| LdapError::Search("the rootDSE names no dsServiceName".into()))?;
        let ntds = self
            .base_entry(&service, &["invocationId"])
            .await?
            .ok_or_else(|| LdapError::Search(format!("{service} returned nothing")))?;
        let invocation_id = ntds
            .values("invocationId")
            .next()
            .and_then(|b| ObjectGuid::from_ad_bytes(b).ok())
            .ok_or_else(|| LdapError::Search(format!("{service} has no invocationId")))?;
        let highest_committed_usn = root
            .first_text("highestCommittedUSN")
            .and_then(|v| v.parse().ok());
        Ok(DomainController {
            naming_context,
            invocation_id: invocation_id.to_string(),
            configuration_context: root.first_text("configurationNamingContext"),
            highest_committed_usn,
        })
    }

    /// Days a deleted object stays readable as a tombstone in the forest
    /// of `dc`: `tombstoneLifetime` (and `msDS-DeletedObjectLifetime`
    /// where set, the shorter) of CN=Directory Service; unset, 60 days, as
    /// Windows reads it.
    pub async fn tombstone_lifetime_days(
        &mut self,
        dc: &DomainController,
    ) -> Result<u32, LdapError> {
        let configuration = dc.configuration_context.as_deref().ok_or_else(|| {
            LdapError::Search("the rootDSE names no configurationNamingContext".into())
        })?;
        let dn = format!("CN=Directory Service,CN=Windows NT,CN=Services,{configuration}");
        let entry = self
            .base_entry(&dn, &["tombstoneLifetime", "msDS-DeletedObjectLifetime"])
            .await?
            .ok_or_else(|| LdapError::Search(format!("{dn} returned nothing")))?;
        let days = |name: &str| entry.first_text(name)?.parse::<u32>().ok();
        let lifetime = days("tombstoneLifetime").unwrap_or(DEFAULT_TOMBSTONE_LIFETIME_DAYS);
        Ok(days("msDS-DeletedObjectLifetime").map_or(lifetime, |d| d.min(lifetime)))
    }

    pub(crate) async fn base_entry(
        &mut self,
        dn: &str,
        attrs: &[&str],
    ) -> Result<Option<RawEntry>, LdapError> {
        let timeout = self.timeouts.operation;
        let ldap3::SearchResult(entries, res) = self
            .ldap
            .with_timeout(timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
            .map_err(|e| self.link.error(e, timeout))?;
        if res.rc != 0 {
            return Err(LdapError::Search(format!(
                "reading {dn:?}: LDAP result {}: {}",
                res.rc,
                res.text.trim_end_matches('\0')
            )));
        }
        entries
            .into_iter()
            .next()
            .map(|e| RawEntry::read(e.0).map_err(LdapError::Search))
            .transpose()
    }

    /// Whether the bind account may read tombstones: a child of CN=Deleted
    /// Objects is found with the show-deleted control. (A domain where
    /// nothing was ever deleted reads as not: deletions are then said to
    /// wait for the full sync, which is the safe side.)
    pub async fn sees_tombstones(&mut self, naming_context: &str) -> bool {
        let timeout = self.timeouts.operation;
        let base = format!("CN=Deleted Objects,{naming_context}");
        self.ldap
            .with_timeout(timeout)
            .with_search_options(ldap3::SearchOptions::new().sizelimit(1))
            .with_controls(vec![show_deleted_control()])
            .search(
                &base,
                Scope::OneLevel,
                "(objectClass=*)",
                vec!["objectGUID"],
            )
            .await
            .is_ok_and(|r| matches!(r.1.rc, 0 | 4) && !r.0.is_empty())
    }

    /// Reads what changed since highestCommittedUSN `since` by uSNChanged
    /// (`(uSNChanged>=since+1)` over the naming context, tombstones
    /// included where the bind account may read them) and hands each
    /// change to `sink`, as [`Session::collect_delta`] does. The cookie is
    /// the DC's highestCommittedUSN as `dc` read it, before this read: a
    /// change committed during it is read again by the next delta, never
    /// missed. Group member changes come as the group read whole.
    pub async fn collect_usn_delta<F, Fut>(
        &mut self,
        root_dn: &Dn,
        dc: &DomainController,
        include_contacts: bool,
        since: u64,
        mut sink: F,
    ) -> Result<DeltaSummary, DeltaError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let high = dc.highest_committed_usn.ok_or_else(|| {
            DeltaError::Unavailable("the rootDSE names no highestCommittedUSN".into())
        })?;
        let naming_context = dc.naming_context.as_str();
        let filter = format!(
            "(&{CHANGED_CLASSES}(uSNChanged>={}))",
            since.saturating_add(1)
        );
        let controls = crate::SearchControls {
            extended_dn: true,
            show_deleted: true,
        };
        let attrs = vec!["objectGUID".to_owned(), "isDeleted".to_owned()];
        let mut out = DeltaSummary::default();
        let (reported, incomplete) = self
            .search_all(naming_context, &filter, attrs, controls)
            .await?;
        if !incomplete.is_empty() {
            // A poll that missed a page would skip its changes for good.
            return Err(DeltaError::Unavailable(format!(
                "the uSNChanged read was incomplete: {}",
                incomplete.join("; ")
            )));
        }
        let mut reread = Vec::new();
        for e in reported {
            let Some((guid, polled)) = classify_polled(&e, root_dn) else {
                continue;
            };
            let change = match polled {
                Polled::InRoot => {
                    reread.push(guid);
                    continue;
                }
                Polled::Deleted => bus::DeltaChange::Deleted,
                Polled::Outside => bus::DeltaChange::LeftScope,
            };
            sink(delta_entry(change, guid)).await?;
            out.summary.entries += 1;
        }
        self.reread(
            root_dn,
            include_contacts,
            reread,
            &mut out.summary,
            &mut sink,
        )
        .await?;
        out.cookie = high.to_string().into_bytes();
        Ok(out)
    }

    /// One DirSync request; (entries, more, cookie).
    async fn dirsync_page(
        &mut self,
        mode: DirSyncMode,
        naming_context: &str,
        filter: &str,
        attrs: Vec<String>,
        cookie: &[u8],
    ) -> Result<(Vec<RawEntry>, bool, Vec<u8>), DeltaError> {
        let timeout = self.timeouts.operation;
        let ldap3::SearchResult(entries, res) = self
            .ldap
            .with_timeout(timeout)
            .with_controls(vec![
                dirsync_control(mode.flags(), cookie),
                extended_dn_control(),
            ])
            .search(naming_context, Scope::Subtree, filter, attrs)
            .await
            .map_err(|e| match self.link.error(e, timeout) {
                e if e.is_connection_failure() => DeltaError::Ldap(e),
                e => DeltaError::Unavailable(format!("the DirSync read failed: {e}")),
            })?;
        match res.rc {
            0 => {}
            50 => {
                return Err(DeltaError::NotPermitted(format!(
                    "the bind account may not read the change stream (insufficientAccessRights): grant it \"Replicating Directory Changes\" on the domain: {}",
                    res.text.trim_end_matches('\0')
                )));
            }
            rc => {
                return Err(DeltaError::Unavailable(format!(
                    "the directory refused the DirSync read (LDAP result {rc}): {}",
                    res.text.trim_end_matches('\0')
                )));
            }
        }
        let (more, next) = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == DIRSYNC_OID)
            .and_then(|c| c.1.val.as_deref())
            .and_then(parse_dirsync_response)
            .ok_or_else(|| {
                DeltaError::Unavailable("the directory answered DirSync without a cookie".into())
            })?;
        let mut read = Vec::with_capacity(entries.len());
        for e in entries {
            match RawEntry::read(e.0) {
                Ok(e) => read.push(e),
                Err(reason) => {
                    return Err(DeltaError::Unavailable(format!(
                        "a DirSync entry cannot be read: {reason}"
                    )));
                }
            }
        }
        Ok((read, more, next))
    }

    /// A cookie for "now": a DirSync read that matches nothing, taken
    /// before a full read so that what changes during it is in the next
    /// delta. With replication rights if the bind account has them, else
    /// with object security.
    pub async fn dirsync_baseline(
        &mut self,
        naming_context: &str,
    ) -> Result<(DirSyncMode, Vec<u8>), DeltaError> {
        match self
            .baseline_as(DirSyncMode::Replication, naming_context)
            .await
        {
            Err(DeltaError::NotPermitted(_)) => {
                let mode = DirSyncMode::ObjectSecurity;
                Ok((mode, self.baseline_as(mode, naming_context).await?))
            }
            other => other.map(|c| (DirSyncMode::Replication, c)),
        }
    }

    async fn baseline_as(
        &mut self,
        mode: DirSyncMode,
        naming_context: &str,
    ) -> Result<Vec<u8>, DeltaError> {
        let mut cookie = Vec::new();
        loop {
            let (_, more, next) = self
                .dirsync_page(
                    mode,
                    naming_context,
                    "(objectGUID=\\00)",
                    vec!["objectGUID".to_owned()],
                    &cookie,
                )
                .await?;
            cookie = next;
            if !more {
                return Ok(cookie);
            }
        }
    }

    /// Reads what changed since `cookie` and hands each change to `sink`
    /// as a delta entry (see `bus::DeltaChange`). Changed objects are read
    /// whole under `root_dn`, as a full read reads them.
    pub async fn collect_delta<F, Fut>(
        &mut self,
        mode: DirSyncMode,
        root_dn: &Dn,
        naming_context: &str,
        include_contacts: bool,
        cookie: &[u8],
        mut sink: F,
    ) -> Result<DeltaSummary, DeltaError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let filter = CHANGED_CLASSES;
        let mut attrs: Vec<String> = ATTRIBUTES.iter().map(|a| (*a).to_owned()).collect();
        attrs.push("isDeleted".to_owned());
        // A move or rename changes `name` (and nothing else that is
        // asked for): without it, DirSync does not report one.
        attrs.push("name".to_owned());
        let mut out = DeltaSummary::default();
        let mut cookie = cookie.to_vec();
        loop {
            let (entries, more, next) = self
                .dirsync_page(mode, naming_context, filter, attrs.clone(), &cookie)
                .await?;
            let mut reread = Vec::new();
            for e in entries {
                match classify(e, root_dn) {
                    None => {}
                    Some(Reported::Deleted(g)) => {
                        sink(delta_entry(bus::DeltaChange::Deleted, g)).await?;
                        out.summary.entries += 1;
                    }
                    Some(Reported::LeftScope(g)) => {
                        sink(delta_entry(bus::DeltaChange::LeftScope, g)).await?;
                        out.summary.entries += 1;
                    }
                    Some(Reported::Members {
                        group,
                        added,
                        removed,
                    }) => {
                        let mut e = delta_entry(bus::DeltaChange::Members, group);
                        e.member_guids = added.iter().map(ToString::to_string).collect();
                        e.removed_member_guids = removed.iter().map(ToString::to_string).collect();
                        sink(e).await?;
                        out.summary.entries += 1;
                    }
                    Some(Reported::Changed(g)) => reread.push(g),
                }
            }
            self.reread(
                root_dn,
                include_contacts,
                reread,
                &mut out.summary,
                &mut sink,
            )
            .await?;
            cookie = next;
            if !more {
                break;
            }
        }
        out.cookie = cookie;
        Ok(out)
    }

    /// Reads `guids` whole under `root_dn`, a chunk per search; those not
    /// found left the scope.
    async fn reread<F, Fut>(
        &mut self,
        root_dn: &Dn,
        include_contacts: bool,
        mut guids: Vec<ObjectGuid>,
        summary: &mut CollectionSummary,
        sink: &mut F,
    ) -> Result<(), LdapError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        guids.sort();
        guids.dedup();
        for chunk in guids.chunks(REREAD_CHUNK) {
            self.reread_chunk(root_dn, include_contacts, chunk, summary, sink)
                .await?;
        }
        Ok(())
    }

    async fn reread_chunk<F, Fut>(
        &mut self,
        root_dn: &Dn,
        include_contacts: bool,
        guids: &[ObjectGuid],
        summary: &mut CollectionSummary,
        sink: &mut F,
    ) -> Result<(), LdapError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let filter = format!(
            "(&{}(|{}))",
            object_filter(include_contacts),
            guids.iter().map(guid_filter).collect::<String>()
        );
        let first_range = format!("member;range=0-{}", MEMBER_RANGE - 1);
        let mut attrs: Vec<String> = ATTRIBUTES
            .iter()
            .map(|a| {
                if *a == "member" {
                    first_range.clone()
                } else {
                    (*a).to_owned()
                }
            })
            .collect();
        attrs.push("memberOf".to_owned());
        attrs.push("directReports".to_owned());
        let mut found: HashMap<ObjectGuid, ()> = HashMap::new();
        let reader = EntryReader::new(&DirectorySchema::ActiveDirectory);
        let mut read = Vec::new();
        let part = self
            .search_entries(
                root_dn.as_str(),
                &filter,
                attrs,
                crate::SearchControls {
                    extended_dn: true,
                    show_deleted: false,
                },
                1000,
                |e| {
                    read.push(e);
                    std::future::ready(Ok(()))
                },
            )
            .await?;
        summary.referrals += part.referrals;
        summary.incomplete_reasons.extend(part.incomplete_reasons);
        for mut raw in read {
            let (_, dn) = split_extended_dn(&raw.dn);
            raw.dn = dn.to_owned();
            let members = take_links(&mut raw, "member");
            let manager = take_links(&mut raw, "manager").into_iter().next();
            let member_of = take_links(&mut raw, "memberof");
            let reports = take_links(&mut raw, "directreports");
            raw.attrs.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("memberof") && !k.eq_ignore_ascii_case("directreports")
            });
            match reader.read(raw) {
                Ok(Some(mut e)) => {
                    if let Ok(g) = e.object_guid.parse::<ObjectGuid>() {
                        found.insert(g, ());
                    }
                    e.delta = bus::DeltaChange::Changed as i32;
                    e.member_guids = members.iter().map(ToString::to_string).collect();
                    e.manager_guid = manager.map(|m| m.to_string()).unwrap_or_default();
                    e.member_of_guids = member_of.iter().map(ToString::to_string).collect();
                    e.direct_report_guids = reports.iter().map(ToString::to_string).collect();
                    summary.entries += 1;
                    sink(e).await?;
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(%reason, "directory entry skipped");
                    summary.incomplete_reasons.push(reason);
                }
            }
        }
        for g in guids {
            if !found.contains_key(g) {
                summary.entries += 1;
                sink(delta_entry(bus::DeltaChange::LeftScope, *g)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_dns_split() {
        let (g, dn) = split_extended_dn(
            "<GUID=34ff3315-797a-4fd4-a362-c0cf08a1eff2>;<SID=S-1-5-21-1-2-3-1103>;CN=u1,OU=exp,DC=corp",
        );
        assert_eq!(
            g.map(|g| g.to_string()).as_deref(),
            Some("34ff3315-797a-4fd4-a362-c0cf08a1eff2")
        );
        assert_eq!(dn, "CN=u1,OU=exp,DC=corp");
        assert_eq!(split_extended_dn("CN=x,DC=y"), (None, "CN=x,DC=y"));
        assert_eq!(split_extended_dn("<GUID=broken"), (None, "<GUID=broken"));
    }

    #[test]
    fn the_dirsync_value_round_trips() {
        let c = dirsync_control(INCREMENTAL_VALUES, b"MSDS-cookie");
        let value = c.val.expect("value");
        // SEQUENCE { INTEGER -2^31 (4 bytes), INTEGER 2^20, OCTET STRING }
        assert_eq!(&value[..8], &[0x30, 0x18, 0x02, 0x04, 0x80, 0, 0, 0]);
        // A response has the same shape: moreResults, unused, cookie.
        let mut resp = BytesMut::new();
        let tag = Tag::Sequence(Sequence {
            inner: vec![
                Tag::Integer(Integer {
                    inner: 1,
                    ..Default::default()
                }),
                Tag::Integer(Integer {
                    inner: 0,
                    ..Default::default()
                }),
                Tag::OctetString(OctetString {
                    inner: b"next".to_vec(),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        })
        .into_structure();
        ldap3::asn1::write::encode_into(&mut resp, tag).expect("encodes");
        assert_eq!(
            parse_dirsync_response(&resp),
            Some((true, b"next".to_vec()))
        );
        assert_eq!(parse_dirsync_response(b"\x04\x00"), None);
        assert_eq!(parse_dirsync_response(b""), None);
    }

    fn raw(dn: &str, attrs: &[(&str, &[&[u8]])]) -> RawEntry {
        RawEntry {
            dn: dn.to_owned(),
            attrs: attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.iter().map(|b| b.to_vec()).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn dirsync_entries_are_classified() {
        let root = Dn::parse("OU=exp,DC=corp").expect("dn");
        let g = ObjectGuid::from_ad_bytes(&[7; 16]).expect("guid");
        let gb: &[u8] = &[7; 16];
        let member = b"<GUID=34ff3315-797a-4fd4-a362-c0cf08a1eff2>;CN=u1,OU=exp,DC=corp";
        assert_eq!(
            classify(
                raw(
                    "<GUID=x>;CN=g1,OU=exp,DC=corp",
                    &[
                        ("objectGUID", &[gb]),
                        ("instanceType", &[b"4"]),
                        ("member;range=0-0", &[member])
                    ]
                ),
                &root
            ),
            Some(Reported::Members {
                group: g,
                added: vec![],
                removed: vec![
                    "34ff3315-797a-4fd4-a362-c0cf08a1eff2"
                        .parse()
                        .expect("guid")
                ],
            })
        );
        assert_eq!(
            classify(
                raw(
                    "CN=u\\0ADEL:x,CN=Deleted Objects,DC=corp",
                    &[("objectGUID", &[gb]), ("isDeleted", &[b"TRUE"])]
                ),
                &root
            ),
            Some(Reported::Deleted(g))
        );
        assert_eq!(
            classify(
                raw("CN=u,OU=other,DC=corp", &[("objectGUID", &[gb])]),
                &root
            ),
            Some(Reported::LeftScope(g))
        );
        assert_eq!(
            classify(
                raw(
                    "CN=g1,OU=exp,DC=corp",
                    &[
                        ("objectGUID", &[gb]),
                        ("name", &[b"g1"]),
                        ("member;range=1-1", &[member])
                    ]
                ),
                &root
            ),
            Some(Reported::Changed(g))
        );
        assert_eq!(classify(raw("CN=u,OU=exp,DC=corp", &[]), &root), None);
    }
}
