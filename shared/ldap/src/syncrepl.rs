//! Delta reads of generic LDAP directories: RFC 4533 content
//! synchronization in refreshOnly mode, from a cookie the server gave
//! (OpenLDAP: the syncprov overlay, whose session log names deletions).
//!
//! A refresh from a cookie answers with the entries changed since it
//! (state add or modify, read whole with the attributes a full read asks
//! for) and the entryUUIDs of those deleted or moved out of the search
//! (a syncIdSet with refreshDeletes, or entries with state delete). A
//! server that cannot say what was deleted answers with a present phase:
//! every unchanged entry named present, the rest to be deleted by the
//! client. dirsync then reads in full instead, which is as cheap and
//! simpler to trust.
//!
//! A changed entry's links are DNs: its members' and manager's are
//! resolved to entryUUIDs, and the groups that list it and the entries it
//! manages are looked up (`member=`, `manager=`), as a full read would
//! resolve them.

use std::collections::HashMap;

use ldap3::Scope;
use ldap3::asn1::{Enumerated, OctetString, PL, StructureTag, Tag};
use ldap3::asn1::{TagClass, Types};
use ldap3::controls::RawControl;

use dirsync_core::{DirectorySchema, Dn, LdapSchema, ObjectGuid};
use dirsync_proto::bus::{self, DirectoryEntry};

use crate::delta::{DeltaError, DeltaSummary};
use crate::entry::{EntryReader, RawEntry};
use crate::{LdapError, Session};

pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// The cursor source of content synchronization.
pub const SYNCREPL_SOURCE: &str = "syncrepl";
/// DNs per search that resolves links.
const RESOLVE_CHUNK: usize = 100;

/// The Sync Request control, refreshOnly, with `cookie` when there is one.
fn sync_request(cookie: Option<&[u8]>) -> RawControl {
    let mut inner = vec![Tag::Enumerated(Enumerated {
        inner: 1,
        ..Default::default()
    })];
    if let Some(c) = cookie {
        inner.push(Tag::OctetString(OctetString {
            inner: c.to_vec(),
            ..Default::default()
        }));
    }
    crate::delta::encoded_control(SYNC_REQUEST_OID, true, inner)
}

fn universal(tag: &StructureTag, ty: Types) -> bool {
    tag.class == TagClass::Universal && tag.id == ty as u64
}

fn primitive(tag: StructureTag) -> Option<Vec<u8>> {
    match tag.payload {
        PL::P(bytes) => Some(bytes),
        PL::C(_) => None,
    }
}

fn boolean(tag: &StructureTag) -> Option<bool> {
    match &tag.payload {
        PL::P(b) if universal(tag, Types::Boolean) && b.len() == 1 => Some(b[0] != 0),
        _ => None,
    }
}

/// An entry's state in a refresh (the Sync State control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// The Sync State control: `SEQUENCE { state ENUMERATED, entryUUID
/// OCTET STRING (16), cookie OCTET STRING OPTIONAL }`. `None` when it is
/// not that.
pub fn parse_sync_state(value: &[u8]) -> Option<(EntryState, ObjectGuid)> {
    let tag = crate::entry::parse_ber(value)?;
    let PL::C(parts) = tag.payload else {
        return None;
    };
    let mut parts = parts.into_iter();
    let state = parts.next()?;
    if !universal(&state, Types::Enumerated) {
        return None;
    }
    let state = match primitive(state)?.as_slice() {
        [0] => EntryState::Present,
        [1] => EntryState::Add,
        [2] => EntryState::Modify,
        [3] => EntryState::Delete,
        _ => return None,
    };
    let uuid = parts.next()?;
    if !universal(&uuid, Types::OctetString) {
        return None;
    }
    Some((state, uuid_of(&primitive(uuid)?)?))
}

/// The Sync Done control: `SEQUENCE { cookie OCTET STRING OPTIONAL,
/// refreshDeletes BOOLEAN DEFAULT FALSE }`: (cookie, refreshDeletes).
pub fn parse_sync_done(value: &[u8]) -> Option<(Option<Vec<u8>>, bool)> {
    let tag = crate::entry::parse_ber(value)?;
    let PL::C(parts) = tag.payload else {
        return None;
    };
    let mut cookie = None;
    let mut deletes = false;
    for part in parts {
        if universal(&part, Types::OctetString) && cookie.is_none() {
            cookie = Some(primitive(part)?);
        } else {
            deletes = boolean(&part)?;
        }
    }
    Some((cookie, deletes))
}

/// A Sync Info message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    /// refreshDelete (true) or refreshPresent (false), with its cookie.
    Phase {
        deletes: bool,
        cookie: Option<Vec<u8>>,
    },
    /// entryUUIDs deleted (refreshDeletes) or present.
    IdSet {
        cookie: Option<Vec<u8>>,
        deletes: bool,
        uuids: Vec<ObjectGuid>,
    },
}

/// The value of a Sync Info message (the intermediate response's
/// responseValue). `None` when it is not one.
pub fn parse_sync_info(value: &[u8]) -> Option<SyncInfo> {
    let tag = crate::entry::parse_ber(value)?;
    if tag.class != TagClass::Context {
        return None;
    }
    match (tag.id, tag.payload) {
        (0, PL::P(cookie)) => Some(SyncInfo::NewCookie(cookie)),
        (id @ (1 | 2), PL::C(parts)) => {
            let mut cookie = None;
            for part in parts {
                if universal(&part, Types::OctetString) {
                    cookie = Some(primitive(part)?);
                } else {
                    // refreshDone: every refresh here is refreshOnly.
                    boolean(&part)?;
                }
            }
            Some(SyncInfo::Phase {
                deletes: id == 1,
                cookie,
            })
        }
        (3, PL::C(parts)) => {
            let mut cookie = None;
            let mut deletes = false;
            let mut uuids = Vec::new();
            for part in parts {
                if universal(&part, Types::OctetString) {
                    cookie = Some(primitive(part)?);
                } else if universal(&part, Types::Boolean) {
                    deletes = boolean(&part)?;
                } else if universal(&part, Types::Set) {
                    let PL::C(ids) = part.payload else {
                        return None;
                    };
                    for id in ids {
                        uuids.push(uuid_of(&primitive(id)?)?);
                    }
                } else {
                    return None;
                }
            }
            Some(SyncInfo::IdSet {
                cookie,
                deletes,
                uuids,
            })
        }
        _ => None,
    }
}

/// A syncUUID: an entryUUID's 16 octets, in RFC 4122 order.
fn uuid_of(bytes: &[u8]) -> Option<ObjectGuid> {
    Some(ObjectGuid::from_bytes(bytes.try_into().ok()?))
}

/// The responseValue of an intermediate response that is a Sync Info
/// message.
fn intermediate_value(tag: StructureTag) -> Option<Vec<u8>> {
    let PL::C(parts) = tag.payload else {
        return None;
    };
    let mut name = None;
    let mut value = None;
    for part in parts {
        match (part.class, part.id) {
            (TagClass::Context, 0) => name = primitive(part),
            (TagClass::Context, 1) => value = primitive(part),
            _ => {}
        }
    }
    (name.as_deref() == Some(SYNC_INFO_OID.as_bytes()))
        .then_some(value)
        .flatten()
}

/// The CSNs of a cookie (`rid=000,csn=20261203…Z#000000#000#000000;…`) or
/// of a contextCSN, by server ID (the CSN's third field).
fn csns<'a>(values: impl Iterator<Item = &'a str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for csn in values.flat_map(|v| v.split(';')) {
        if let Some(sid) = csn.split('#').nth(2) {
            out.insert(sid.to_owned(), csn.to_owned());
        }
    }
    out
}

fn cookie_csns(cookie: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(cookie);
    csns(
        text.split(',')
            .filter_map(|field| field.strip_prefix("csn="))
            .collect::<Vec<_>>()
            .into_iter(),
    )
}

/// Whether the server's contextCSN is behind `cookie` for a server ID:
/// restored from a backup, it would not send the changes between.
pub fn server_behind(cookie: &[u8], context_csns: &[String]) -> Option<String> {
    let server = csns(context_csns.iter().map(String::as_str));
    cookie_csns(cookie)
        .into_iter()
        .find_map(|(sid, ours)| match server.get(&sid) {
            // CSNs of one server ID compare as text (a fixed-width time).
            Some(theirs) if *theirs >= ours => None,
            Some(theirs) => Some(format!(
                "the directory's contextCSN ({theirs}) is older than the delta cookie's ({ours}), as after a restore from backup"
            )),
            None => Some(format!(
                "the directory's contextCSN names no change of server ID {sid}, which the delta cookie holds"
            )),
        })
}

/// How one refresh message reads.
enum Refreshed {
    Changed(RawEntry),
    Deleted(Vec<ObjectGuid>),
    Cookie(Vec<u8>),
    /// A present phase: the server cannot name deletions.
    Present,
}

impl Session {
    /// A cookie for "now": a refresh without a cookie that matches
    /// nothing, taken before a full read so that what changes during it
    /// is in the next delta.
    pub async fn syncrepl_baseline(&mut self, root_dn: &Dn) -> Result<Vec<u8>, DeltaError> {
        let (_, cookie) = self
            .refresh(
                root_dn,
                "(entryUUID=00000000-0000-0000-0000-000000000000)",
                vec!["entryUUID".to_owned()],
                None,
                |_| std::future::ready(Ok(())),
            )
            .await?;
        cookie.ok_or_else(|| {
            DeltaError::Unavailable(
                "the directory answered content synchronization without a cookie".into(),
            )
        })
    }

    /// One refreshOnly search: hands each message to `sink` as it comes;
    /// (whether the server named deletions, the last cookie).
    async fn refresh<F, Fut>(
        &mut self,
        base: &Dn,
        filter: &str,
        attrs: Vec<String>,
        cookie: Option<&[u8]>,
        mut sink: F,
    ) -> Result<(bool, Option<Vec<u8>>), DeltaError>
    where
        F: FnMut(Refreshed) -> Fut,
        Fut: std::future::Future<Output = Result<(), DeltaError>>,
    {
        let timeout = self.timeouts.operation;
        let mut ldap = self.ldap.clone();
        let mut stream = ldap
            .with_timeout(timeout)
            .with_controls(vec![sync_request(cookie)])
            .streaming_search(base.as_str(), Scope::Subtree, filter, attrs)
            .await
            .map_err(|e| DeltaError::Ldap(self.link.error(e, timeout)))?;
        let mut last_cookie = None;
        let mut failed = None;
        loop {
            let next = tokio::time::timeout(timeout, stream.next())
                .await
                .map_err(|_| DeltaError::Ldap(LdapError::Timeout(timeout)))?
                .map_err(|e| DeltaError::Ldap(self.link.error(e, timeout)))?;
            let Some(msg) = next else { break };
            if failed.is_some() || msg.is_ref() {
                continue;
            }
            let read = if msg.is_intermediate() {
                match intermediate_value(msg.0).and_then(|v| parse_sync_info(&v)) {
                    Some(SyncInfo::NewCookie(c)) => Refreshed::Cookie(c),
                    Some(SyncInfo::Phase {
                        deletes: true,
                        cookie: Some(c),
                    }) => Refreshed::Cookie(c),
                    Some(SyncInfo::Phase { deletes: true, .. }) => continue,
                    Some(SyncInfo::Phase { deletes: false, .. }) => Refreshed::Present,
                    Some(SyncInfo::IdSet {
                        deletes: true,
                        uuids,
                        cookie,
                    }) => {
                        if let Some(c) = cookie {
                            last_cookie = Some(c);
                        }
                        Refreshed::Deleted(uuids)
                    }
                    Some(SyncInfo::IdSet { deletes: false, .. }) => Refreshed::Present,
                    None => continue,
                }
            } else {
                let state = msg
                    .1
                    .iter()
                    .find(|c| c.1.ctype == SYNC_STATE_OID)
                    .and_then(|c| c.1.val.as_deref())
                    .and_then(parse_sync_state);
                match state {
                    Some((EntryState::Add | EntryState::Modify, _)) => {
                        match RawEntry::read(msg.0) {
                            Ok(e) => Refreshed::Changed(e),
                            Err(reason) => {
                                failed = Some(DeltaError::Unavailable(format!(
                                    "a changed entry cannot be read: {reason}"
                                )));
                                continue;
                            }
                        }
                    }
                    Some((EntryState::Delete, uuid)) => Refreshed::Deleted(vec![uuid]),
                    Some((EntryState::Present, _)) => Refreshed::Present,
                    None => {
                        failed = Some(DeltaError::Unavailable(
                            "the directory sent an entry without its sync state".into(),
                        ));
                        continue;
                    }
                }
            };
            if let Refreshed::Cookie(c) = &read {
                last_cookie = Some(c.clone());
            }
            if let Err(e) = sink(read).await {
                // Read the rest, so that the connection stays usable.
                failed = Some(e);
            }
        }
        let res = stream.finish().await;
        if let Some(e) = failed {
            return Err(e);
        }
        match res.rc {
            0 => {}
            // e-syncRefreshRequired: the cookie is too old to refresh from.
            4096 => {
                return Err(DeltaError::Unavailable(
                    "the directory asks for a full refresh (e-syncRefreshRequired)".into(),
                ));
            }
            50 => {
                return Err(DeltaError::NotPermitted(format!(
                    "the bind account may not use content synchronization (insufficientAccessRights): {}",
                    res.text.trim_end_matches('\0')
                )));
            }
            12 => {
                return Err(DeltaError::Unavailable(
                    "the directory does not offer content synchronization (RFC 4533; OpenLDAP: the syncprov overlay)".into(),
                ));
            }
            rc => {
                return Err(DeltaError::Unavailable(format!(
                    "the directory refused the content synchronization read (LDAP result {rc}): {}",
                    res.text.trim_end_matches('\0')
                )));
            }
        }
        let done = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == SYNC_DONE_OID)
            .and_then(|c| c.1.val.as_deref())
            .map(parse_sync_done)
            .ok_or_else(|| {
                DeltaError::Unavailable(
                    "the directory does not offer content synchronization (RFC 4533; OpenLDAP: the syncprov overlay)"
                        .into(),
                )
            })?
            .ok_or_else(|| {
                DeltaError::Unavailable("the Sync Done control cannot be read".into())
            })?;
        let (done_cookie, deletes) = done;
        Ok((deletes, done_cookie.or(last_cookie)))
    }

    /// The contextCSN of the naming context that holds `root_dn`. None
    /// read (no such context, or one the bind account may not read) is
    /// an empty list: the cookie then reads as ahead of the server, and
    /// the delta in full, saying why.
    async fn context_csns(&mut self, root_dn: &Dn) -> Result<Vec<String>, LdapError> {
        let texts = |e: Option<RawEntry>, name: &str| -> Vec<String> {
            e.map(|e| {
                e.values(name)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect()
            })
            .unwrap_or_default()
        };
        // An LDAP result other than success; the rest are errors.
        let read = |r: Result<Option<RawEntry>, LdapError>| match r {
            Err(LdapError::Search(_)) => Ok(None),
            other => other,
        };
        let root = read(self.base_entry("", &["namingContexts"]).await)?;
        let contexts = texts(root, "namingContexts");
        let Some(context) = contexts
            .iter()
            .filter(|c| Dn::parse(c).is_ok_and(|c| root_dn.is_within(&c)))
            .max_by_key(|c| c.len())
        else {
            return Ok(Vec::new());
        };
        let entry = read(self.base_entry(context, &["contextCSN"]).await)?;
        Ok(texts(entry, "contextCSN"))
    }

    /// Reads what changed under `root_dn` since `cookie` and hands each
    /// change to `sink` as a delta entry, its links resolved to
    /// entryUUIDs.
    pub async fn collect_syncrepl<F, Fut>(
        &mut self,
        schema: &LdapSchema,
        root_dn: &Dn,
        include_contacts: bool,
        cookie: &[u8],
        mut sink: F,
    ) -> Result<DeltaSummary, DeltaError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let context = self.context_csns(root_dn).await?;
        if let Some(why) = server_behind(cookie, &context) {
            return Err(DeltaError::Unavailable(why));
        }
        let directory = DirectorySchema::Ldap(schema.clone());
        let reader = EntryReader::new(&directory);
        let mut changed = Vec::new();
        let mut deleted = Vec::new();
        let (deletes, next) = self
            .refresh(
                root_dn,
                &schema.filter(include_contacts),
                schema.requested_attributes(),
                Some(cookie),
                |m| {
                    let out = match m {
                        Refreshed::Changed(e) => {
                            changed.push(e);
                            Ok(())
                        }
                        Refreshed::Deleted(ids) => {
                            deleted.extend(ids);
                            Ok(())
                        }
                        Refreshed::Cookie(_) => Ok(()),
                        Refreshed::Present => Err(DeltaError::Unavailable(
                            "the directory cannot name what was deleted since the cookie (a present phase: its session log no longer covers it)".into(),
                        )),
                    };
                    std::future::ready(out)
                },
            )
            .await?;
        if !deletes && !changed.is_empty() {
            // Changes without refreshDeletes: what was not sent is to be
            // deleted, which only a full read can tell.
            return Err(DeltaError::Unavailable(
                "the directory answered with a present phase: it cannot name what was deleted since the cookie".into(),
            ));
        }
        let mut out = DeltaSummary::default();
        for guid in deleted {
            sink(DirectoryEntry {
                object_guid: guid.to_string(),
                delta: bus::DeltaChange::Deleted as i32,
                ..Default::default()
            })
            .await?;
            out.summary.entries += 1;
        }
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
        out.cookie = next.unwrap_or_else(|| cookie.to_vec());
        Ok(out)
    }

    /// Resolves the changed entries' member and manager DNs to entryUUIDs
    /// (those not under `root_dn`, or not found, stay unresolved, as in a
    /// full read), and finds the groups that list each and the entries it
    /// manages.
    pub(crate) async fn resolve_links(
        &mut self,
        schema: &LdapSchema,
        root_dn: &Dn,
        include_contacts: bool,
        entries: &mut [DirectoryEntry],
    ) -> Result<(), LdapError> {
        let wanted: std::collections::HashSet<Dn> = entries
            .iter()
            .flat_map(|e| e.member_dns.iter().chain(Some(&e.manager_dn)))
            .filter_map(|d| Dn::parse(d).ok())
            .filter(|d| d.is_within(root_dn))
            .collect();
        let wanted: Vec<Dn> = wanted.into_iter().collect();
        let mut uuids: HashMap<Dn, String> = HashMap::new();
        for chunk in wanted.chunks(RESOLVE_CHUNK) {
            let filter = format!(
                "(&{}(|{}))",
                schema.filter(include_contacts),
                chunk
                    .iter()
                    .map(|d| format!("(entryDN={})", ldap3::ldap_escape(d.as_str())))
                    .collect::<String>()
            );
            for (dn, uuid, _) in self.lookup(root_dn, &filter, &[]).await? {
                uuids.insert(dn, uuid);
            }
        }
        let member_attr = schema.attribute("members");
        let manager_attr = schema.attribute("manager");
        for e in entries.iter_mut() {
            e.member_guids = e
                .member_dns
                .iter()
                .filter_map(|d| uuids.get(&Dn::parse(d).ok()?).cloned())
                .collect();
            e.manager_guid = Dn::parse(&e.manager_dn)
                .ok()
                .and_then(|d| uuids.get(&d).cloned())
                .unwrap_or_default();
            let dn = ldap3::ldap_escape(e.dn.as_str());
            let mut clauses = String::new();
            if let Some(m) = member_attr {
                clauses.push_str(&format!(
                    "(&(objectClass={})({m}={dn}))",
                    ldap3::ldap_escape(schema.group_class.as_str())
                ));
            }
            if let Some(m) = manager_attr {
                clauses.push_str(&format!("({m}={dn})"));
            }
            if clauses.is_empty() {
                continue;
            }
            let linked = self
                .lookup(root_dn, &format!("(|{clauses})"), &["objectClass"])
                .await?;
            for (_, uuid, classes) in linked {
                let group = classes
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&schema.group_class));
                if group {
                    e.member_of_guids.push(uuid);
                } else {
                    e.direct_report_guids.push(uuid);
                }
            }
        }
        Ok(())
    }

    /// (DN, entryUUID, objectClass values) of what `filter` finds under
    /// `root_dn`.
    async fn lookup(
        &mut self,
        root_dn: &Dn,
        filter: &str,
        extra: &[&str],
    ) -> Result<Vec<(Dn, String, Vec<String>)>, LdapError> {
        let mut attrs = vec!["entryUUID".to_owned()];
        attrs.extend(extra.iter().map(|a| (*a).to_owned()));
        let (found, incomplete) = self
            .search_all(root_dn.as_str(), filter, attrs, Default::default())
            .await?;
        if !incomplete.is_empty() {
            return Err(LdapError::Search(format!(
                "resolving a delta's links: {}",
                incomplete.join("; ")
            )));
        }
        Ok(found
            .into_iter()
            .filter_map(|e| {
                let dn = Dn::parse(&e.dn).ok()?;
                let uuid = e.first_text("entryUUID")?.to_lowercase();
                let classes = e
                    .values("objectClass")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                Some((dn, uuid, classes))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use ldap3::asn1::{ASNTag, Boolean, Sequence};

    fn encode(tag: Tag) -> Vec<u8> {
        let mut buf = BytesMut::new();
        ldap3::asn1::write::encode_into(&mut buf, tag.into_structure()).expect("encodes");
        buf.to_vec()
    }

    fn octets(b: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: b.to_vec(),
            ..Default::default()
        })
    }

    const UUID: [u8; 16] = [
        0xd2, 0x06, 0x13, 0x7a, 0x83, 0x7a, 0x10, 0x41, 0x9b, 0x30, 0x7f, 0x5b, 0x6c, 0x10, 0x2f,
        0x77,
    ];

    #[test]
    fn sync_state_and_done_are_read_and_junk_is_refused() {
        let state = encode(Tag::Sequence(Sequence {
            inner: vec![
                Tag::Enumerated(Enumerated {
                    inner: 1,
                    ..Default::default()
                }),
                octets(&UUID),
            ],
            ..Default::default()
        }));
        let (s, uuid) = parse_sync_state(&state).expect("a sync state");
        assert_eq!(s, EntryState::Add);
        assert_eq!(uuid.to_string(), "d206137a-837a-1041-9b30-7f5b6c102f77");
        // An unknown state, nothing, a value cut short.
        assert!(parse_sync_state(b"\x30\x03\x0a\x01\x09").is_none());
        assert!(parse_sync_state(&[]).is_none());
        assert!(parse_sync_state(&state[..state.len() - 3]).is_none());

        let done = encode(Tag::Sequence(Sequence {
            inner: vec![
                octets(b"rid=000,csn=20261203153449.423587Z#000000#000#000000"),
                Tag::Boolean(Boolean {
                    inner: true,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        }));
        let (cookie, deletes) = parse_sync_done(&done).expect("a sync done");
        assert!(deletes);
        assert!(cookie.expect("a cookie").starts_with(b"rid=000,csn="));
        assert_eq!(parse_sync_done(b"\x30\x00"), Some((None, false)));
        assert!(parse_sync_done(b"\x30\x03\x02\x01\x01").is_none());
    }

    #[test]
    fn sync_info_id_sets_name_deletions() {
        let set = StructureTag {
            class: TagClass::Context,
            id: 3,
            payload: PL::C(vec![
                Tag::Boolean(Boolean {
                    inner: true,
                    ..Default::default()
                })
                .into_structure(),
                StructureTag {
                    class: TagClass::Universal,
                    id: Types::Set as u64,
                    payload: PL::C(vec![octets(&UUID).into_structure()]),
                },
            ]),
        };
        let mut buf = BytesMut::new();
        ldap3::asn1::write::encode_into(&mut buf, set).expect("encodes");
        match parse_sync_info(&buf) {
            Some(SyncInfo::IdSet {
                deletes: true,
                uuids,
                cookie: None,
            }) => assert_eq!(uuids.len(), 1),
            other => panic!("{other:?}"),
        }
        // Cut short: the set's last UUID is missing a byte.
        let mut short = buf.to_vec();
        short.pop();
        assert!(parse_sync_info(&short).is_none());
        assert_eq!(
            parse_sync_info(&encode(Tag::Sequence(Sequence::default()))),
            None
        );
    }

    #[test]
    fn a_server_behind_the_cookie_is_noticed() {
        let cookie = b"rid=000,csn=20261203153449.423587Z#000000#000#000000";
        let ahead = vec!["20261203160000.000000Z#000000#000#000000".to_owned()];
        let same = vec!["20261203153449.423587Z#000000#000#000000".to_owned()];
        let behind = vec!["20261101000000.000000Z#000000#000#000000".to_owned()];
        let other_sid = vec!["20261203160000.000000Z#000000#001#000000".to_owned()];
        assert_eq!(server_behind(cookie, &ahead), None);
        assert_eq!(server_behind(cookie, &same), None);
        assert!(
            server_behind(cookie, &behind)
                .expect("behind")
                .contains("restore")
        );
        assert!(server_behind(cookie, &other_sid).is_some());
        // Two servers: each compared with its own.
        let two = b"rid=001,csn=20261203153449.423587Z#000000#000#000000;20261203153449.423587Z#000000#001#000000";
        let both = vec![ahead[0].clone(), other_sid[0].clone()];
        assert_eq!(server_behind(two, &both), None);
        assert!(server_behind(two, &ahead).is_some());
    }
}
