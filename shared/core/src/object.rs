//! Directory objects: what a collector read, decoded into domain types, and
//! the record the store keeps once the integration's policies applied.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dn::Dn;
use crate::email::EmailAddress;
use crate::guid::ObjectGuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    User,
    Group,
    Contact,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Contact => "contact",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "group" => Some(Self::Group),
            "contact" => Some(Self::Contact),
            _ => None,
        }
    }
}

/// userAccountControl ACCOUNTDISABLE.
pub const UAC_ACCOUNT_DISABLE: i64 = 0x2;

/// An object as AD holds it, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryObject {
    pub anchor: ObjectGuid,
    pub kind: ObjectKind,
    pub dn: Dn,
    pub attributes: Attributes,
    pub primary_address: Option<EmailAddress>,
    /// Sorted, without duplicates and without the primary address.
    pub aliases: Vec<EmailAddress>,
    /// userAccountControl has ACCOUNTDISABLE set (or, in another
    /// directory, its mapped disabled attribute says so).
    pub ad_disabled: bool,
    pub member_dns: Vec<Dn>,
    /// Groups only.
    pub group_type: Option<GroupType>,
    /// Values that were dropped while decoding, with the reason.
    pub notes: Vec<String>,
}

/// Descriptive attributes, copied as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub department: String,
    pub title: String,
    pub telephone_number: String,
    pub company: String,
    pub sam_account_name: String,
    pub user_principal_name: String,
    /// objectSid, `S-1-5-21-…`.
    pub object_sid: String,
    /// The manager's DN as AD holds it.
    pub manager_dn: String,
}

/// A group's type, from groupType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupType {
    /// Security group (else distribution).
    pub security: bool,
    pub scope: GroupScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupScope {
    Global,
    DomainLocal,
    Universal,
    /// Created by the system (BUILTIN).
    Builtin,
}

impl GroupType {
    /// Decodes AD's groupType (a signed 32-bit flag set).
    pub fn from_ad(value: i64) -> Self {
        let scope = if value & 0x8 != 0 {
            GroupScope::Universal
        } else if value & 0x4 != 0 {
            GroupScope::DomainLocal
        } else if value & 0x2 != 0 {
            GroupScope::Global
        } else {
            GroupScope::Builtin
        };
        Self {
            security: value & 0x8000_0000 != 0,
            scope,
        }
    }
}

/// An entry as a collector read it, its values as the directory gave
/// them: what a [`DirectoryObject`] is decoded and checked from. (The
/// bus's `DirectoryEntry` is read into one at the edge: dirsync-convert.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: ObjectKind,
    /// objectGUID (or entryUUID), in canonical form.
    pub object_guid: String,
    pub dn: String,
    pub object_sid: String,
    pub user_account_control: Option<i64>,
    pub mail: String,
    pub proxy_addresses: Vec<String>,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub department: String,
    pub title: String,
    pub telephone_number: String,
    pub company: String,
    pub manager_dn: String,
    pub user_principal_name: String,
    pub sam_account_name: String,
    pub member_dns: Vec<String>,
    pub group_type: Option<i64>,
    /// Set by directories without userAccountControl.
    pub disabled: bool,
}

impl Entry {
    /// An entry of `kind` with nothing but its objectGUID and DN.
    pub fn new(kind: ObjectKind, object_guid: impl Into<String>, dn: impl Into<String>) -> Self {
        Self {
            kind,
            object_guid: object_guid.into(),
            dn: dn.into(),
            object_sid: String::new(),
            user_account_control: None,
            mail: String::new(),
            proxy_addresses: Vec::new(),
            display_name: String::new(),
            given_name: String::new(),
            surname: String::new(),
            department: String::new(),
            title: String::new(),
            telephone_number: String::new(),
            company: String::new(),
            manager_dn: String::new(),
            user_principal_name: String::new(),
            sam_account_name: String::new(),
            member_dns: Vec::new(),
            group_type: None,
            disabled: false,
        }
    }
}

/// An entry that cannot be turned into a directory object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry {dn:?}: {reason}")]
    Invalid { dn: String, reason: String },
}

impl TryFrom<Entry> for DirectoryObject {
    type Error = EntryError;

    fn try_from(e: Entry) -> Result<Self, Self::Error> {
        let invalid = |reason: String| EntryError::Invalid {
            dn: e.dn.clone(),
            reason,
        };
        let kind = e.kind;
        let anchor: ObjectGuid = e
            .object_guid
            .parse()
            .map_err(|err| invalid(format!("{err}")))?;
        let dn = Dn::parse(&e.dn).map_err(|err| invalid(format!("DN {err}")))?;

        let mut notes = Vec::new();
        let mut primary = None;
        let mut aliases = Vec::new();
        for value in &e.proxy_addresses {
            let Some((prefix, address)) = value.split_once(':') else {
                notes.push(format!("proxyAddresses value {value:?} has no type prefix"));
                continue;
            };
            let is_smtp = prefix.eq_ignore_ascii_case("smtp");
            if !is_smtp {
                continue; // X500:, SIP:, X400: … are not email addresses
            }
            match EmailAddress::parse(address) {
                Ok(a) if prefix == "SMTP" && primary.is_none() => primary = Some(a),
                Ok(a) => aliases.push(a),
                Err(err) => notes.push(format!("proxyAddresses: {err}")),
            }
        }
        if !e.mail.is_empty() {
            match EmailAddress::parse(&e.mail) {
                Ok(mail) if primary.is_none() => primary = Some(mail),
                Ok(mail) => aliases.push(mail),
                Err(err) => notes.push(format!("mail: {err}")),
            }
        }
        if primary.is_none() && !aliases.is_empty() {
            // No SMTP: primary and no mail: the first alias is the best
            // address there is.
            aliases.sort();
            primary = Some(aliases.remove(0));
        }
        aliases.sort();
        aliases.dedup();
        if let Some(p) = &primary {
            aliases.retain(|a| a != p);
        }

        let mut member_dns = Vec::with_capacity(e.member_dns.len());
        for m in &e.member_dns {
            match Dn::parse(m) {
                Ok(dn) => member_dns.push(dn),
                Err(err) => notes.push(format!("member {m:?}: {err}")),
            }
        }

        Ok(Self {
            anchor,
            kind,
            dn,
            attributes: Attributes {
                display_name: e.display_name,
                given_name: e.given_name,
                surname: e.surname,
                department: e.department,
                title: e.title,
                telephone_number: e.telephone_number,
                company: e.company,
                sam_account_name: e.sam_account_name,
                user_principal_name: e.user_principal_name,
                object_sid: e.object_sid,
                manager_dn: e.manager_dn,
            },
            primary_address: primary,
            aliases,
            ad_disabled: e.disabled
                || e.user_account_control
                    .is_some_and(|uac| uac & UAC_ACCOUNT_DISABLE != 0),
            member_dns,
            // Directories other than AD have no group type.
            group_type: e
                .group_type
                .filter(|_| kind == ObjectKind::Group)
                .map(GroupType::from_ad),
            notes,
        })
    }
}

/// What the store holds for a directory-managed object. The content hash
/// covers every field, so an unchanged object is recognised without
/// rewriting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub anchor: ObjectGuid,
    pub kind: ObjectKind,
    pub dn: String,
    pub attributes: Attributes,
    pub primary_address: Option<EmailAddress>,
    pub aliases: Vec<EmailAddress>,
    pub disabled: bool,
    /// Sorted anchors of direct members (groups only).
    pub members: Vec<ObjectGuid>,
    /// Groups only.
    pub group_type: Option<GroupType>,
    /// The manager, when it is synced too.
    pub manager: Option<ObjectGuid>,
}

impl ObjectRecord {
    pub fn content_hash(&self) -> ContentHash {
        // serde_json of a struct of strings, bools and vectors cannot fail;
        // it is written straight into the hash.
        let mut hasher = Sha256::new();
        let _ = serde_json::to_writer(&mut hasher, self);
        ContentHash(hasher.finalize().into())
    }

    /// The record's JSON, as the store keeps it, and its
    /// [`content_hash`](Self::content_hash).
    pub fn json_and_hash(&self) -> (String, ContentHash) {
        let json = serde_json::to_string(self).unwrap_or_default();
        let hash = ContentHash(Sha256::digest(json.as_bytes()).into());
        (json, hash)
    }

    /// Every address of the object, primary first.
    pub fn addresses(&self) -> impl Iterator<Item = (&EmailAddress, bool)> {
        self.primary_address
            .iter()
            .map(|a| (a, true))
            .chain(self.aliases.iter().map(|a| (a, false)))
    }
}

/// The SHA-256 of a record's JSON: a resync compares it with the stored
/// one to tell whether an object changed. Stored and shown as hex; held as
/// its 32 bytes (a resync keeps one per stored object in memory).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// The first 128 bits of a [`ContentHash`]: what a resync holds per stored
/// object to tell a changed record (two records agree on them by chance
/// once in 2^128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShortHash(pub [u8; 16]);

impl From<ContentHash> for ShortHash {
    fn from(h: ContentHash) -> Self {
        let mut short = [0; 16];
        short.copy_from_slice(&h.0[..16]);
        Self(short)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid content hash {0:?}: expected 64 hex digits")]
pub struct ContentHashError(pub String);

impl FromStr for ContentHash {
    type Err = ContentHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ContentHashError(s.to_owned()))?;
        Ok(Self(out))
    }
}

impl fmt::Display for ShortHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?}: expected 32 hex digits")]
pub struct ShortHashError(pub String);

impl FromStr for ShortHash {
    type Err = ShortHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| ShortHashError(s.to_owned()))?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored hashes decide what a resync rewrites: the hash of a record
    /// must not change between releases.
    #[test]
    fn the_content_hash_is_stable() {
        let record = ObjectRecord {
            anchor: "00112233-4455-6677-8899-aabbccddeeff"
                .parse()
                .expect("guid"),
            kind: ObjectKind::User,
            dn: "CN=Erin,OU=People,DC=corp,DC=example".into(),
            attributes: Attributes {
                display_name: "Erin \"E\" Smith".into(),
                ..Attributes::default()
            },
            primary_address: Some(EmailAddress::parse("erin@corp.example").expect("address")),
            aliases: vec![EmailAddress::parse("e@corp.example").expect("address")],
            disabled: false,
            members: Vec::new(),
            group_type: None,
            manager: None,
        };
        assert_eq!(
            record.content_hash().to_string(),
            hex::encode(Sha256::digest(serde_json::to_vec(&record).expect("json")))
        );
        let stored = "75157620d74066554b698c83863ce1d5496d0d81d37d8b34474976b6728d57e9";
        assert_eq!(record.content_hash().to_string(), stored);
        assert_eq!(stored.parse(), Ok(record.content_hash()));
        // The JSON the store keeps is the one hashed.
        let (json, hash) = record.json_and_hash();
        assert_eq!(
            (json.as_str(), hash),
            (
                serde_json::to_string(&record).expect("json").as_str(),
                record.content_hash()
            )
        );
        assert!("75157620".parse::<ContentHash>().is_err());
        assert!(stored.replace('7', "g").parse::<ContentHash>().is_err());
        // A resync holds the first 128 bits.
        let short = ShortHash::from(record.content_hash());
        assert_eq!(short.to_string(), &stored[..32]);
        assert_eq!(stored[..32].parse(), Ok(short));
        assert!(stored.parse::<ShortHash>().is_err());
        assert!(stored[..31].parse::<ShortHash>().is_err());
    }

    pub(crate) fn entry(kind: ObjectKind, guid: &str, dn: &str) -> Entry {
        Entry::new(kind, guid, dn)
    }

    #[test]
    fn addresses_from_proxy_addresses_and_mail() {
        let mut e = entry(
            ObjectKind::User,
            "00112233-4455-6677-8899-aabbccddeeff",
            "CN=Alice,DC=x",
        );
        e.mail = "Alice@Example.com".into();
        e.proxy_addresses = vec![
            "smtp:a.anders@example.com".into(),
            "X500:/o=Org/ou=Exchange/cn=Recipients/cn=alice".into(),
            "SMTP:alice@example.com".into(),
            "smtp:alice@example.org".into(),
            "sip:alice@example.com".into(),
        ];
        e.user_account_control = Some(514);
        let o = DirectoryObject::try_from(e).expect("valid");
        assert_eq!(
            o.primary_address.as_ref().map(|a| a.as_str()),
            Some("alice@example.com")
        );
        let aliases: Vec<_> = o.aliases.iter().map(|a| a.as_str()).collect();
        assert_eq!(aliases, ["a.anders@example.com", "alice@example.org"]);
        assert!(o.ad_disabled);
        assert!(o.notes.is_empty());
    }

    #[test]
    fn group_types() {
        // Global security, as AD sends it: a negative 32-bit value.
        let g = GroupType::from_ad(-2147483646);
        assert!(g.security);
        assert_eq!(g.scope, GroupScope::Global);
        let g = GroupType::from_ad(8);
        assert!(!g.security);
        assert_eq!(g.scope, GroupScope::Universal);
        assert_eq!(
            GroupType::from_ad(-2147483644).scope,
            GroupScope::DomainLocal
        );
        assert_eq!(
            GroupType::from_ad(-2147483643).scope,
            GroupScope::DomainLocal
        );
    }

    #[test]
    fn mail_only_and_no_address() {
        let mut e = entry(
            ObjectKind::Contact,
            "00112233-4455-6677-8899-aabbccddeeff",
            "CN=V,DC=x",
        );
        e.mail = "vendor@partner.example.net".into();
        let o = DirectoryObject::try_from(e.clone()).expect("valid");
        assert_eq!(
            o.primary_address.map(|a| a.to_string()),
            Some("vendor@partner.example.net".into())
        );
        e.mail.clear();
        let o = DirectoryObject::try_from(e).expect("valid");
        assert!(o.primary_address.is_none() && o.aliases.is_empty());
        assert!(!o.ad_disabled);
    }

    #[test]
    fn bad_entries_are_named() {
        let e = entry(ObjectKind::User, "nope", "CN=Alice,DC=x");
        let err = DirectoryObject::try_from(e).expect_err("bad guid");
        assert!(err.to_string().contains("CN=Alice,DC=x"));
        let e = entry(
            ObjectKind::User,
            "00112233-4455-6677-8899-aabbccddeeff",
            "Alice",
        );
        assert!(DirectoryObject::try_from(e).is_err());
    }
}
