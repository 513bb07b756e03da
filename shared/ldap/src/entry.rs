//! Decoding an LDAP search entry into a bus `DirectoryEntry`.

use std::collections::HashMap;

use ldap3::SearchEntry;

use dirsync_core::{DirectorySchema, LdapSchema, ObjectGuid};
use dirsync_proto::bus::{DirectoryEntry, ObjectKind};

/// The attributes the collector asks for.
pub const ATTRIBUTES: &[&str] = &[
    "objectGUID",
    "objectSid",
    "objectClass",
    "userAccountControl",
    "mail",
    "proxyAddresses",
    "displayName",
    "givenName",
    "sn",
    "department",
    "title",
    "telephoneNumber",
    "company",
    "manager",
    "userPrincipalName",
    "sAMAccountName",
    "member",
    "groupType",
    "whenChanged",
    "uSNChanged",
];

/// Both value maps of an entry, keyed by lower-case attribute name. A value
/// is text when it is valid UTF-8; binary attributes (objectGUID) can land
/// in either map, so both are read.
struct Values {
    text: HashMap<String, Vec<String>>,
    bin: HashMap<String, Vec<Vec<u8>>>,
}

impl Values {
    fn new(e: SearchEntry) -> Self {
        // Attribute descriptions are ASCII (RFC 4512).
        fn lower<V>((mut k, v): (String, V)) -> (String, V) {
            k.make_ascii_lowercase();
            (k, v)
        }
        Self {
            text: e.attrs.into_iter().map(lower).collect(),
            bin: e.bin_attrs.into_iter().map(lower).collect(),
        }
    }

    /// The values of `name`, taken out: for attributes read once.
    fn take_strings(&mut self, name: &str) -> Vec<String> {
        let mut out = self.text.remove(name).unwrap_or_default();
        if let Some(bin) = self.bin.remove(name) {
            out.extend(bin.iter().map(|b| String::from_utf8_lossy(b).into_owned()));
        }
        out
    }

    fn strings(&self, name: &str) -> Vec<String> {
        let mut out = self.text.get(name).cloned().unwrap_or_default();
        if let Some(bin) = self.bin.get(name) {
            out.extend(bin.iter().map(|b| String::from_utf8_lossy(b).into_owned()));
        }
        out
    }

    /// objectClass values, lower-cased.
    fn classes(&self) -> Vec<String> {
        self.strings("objectclass")
            .into_iter()
            .map(|c| c.to_lowercase())
            .collect()
    }

    /// The first value of `name`, as [`Values::strings`] orders them.
    fn first(&self, name: &str) -> Option<String> {
        match self.text.get(name).and_then(|v| v.first()) {
            Some(s) => Some(s.clone()),
            None => self
                .bin
                .get(name)
                .and_then(|v| v.first())
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        }
    }

    fn string(&self, name: &str) -> String {
        self.first(name).unwrap_or_default()
    }

    fn bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.bin
            .get(name)
            .and_then(|v| v.first().cloned())
            .or_else(|| {
                self.text
                    .get(name)
                    .and_then(|v| v.first())
                    .map(|s| s.as_bytes().to_vec())
            })
    }

    fn int(&self, name: &str) -> Result<Option<i64>, String> {
        match self.first(name) {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{name} {s:?} is not a number")),
        }
    }
}

/// `Ok(None)` for an entry that is not a user, group or contact (e.g. a
/// computer); `Err` names what is wrong with an entry that cannot be read.
pub fn to_directory_entry(
    e: SearchEntry,
    directory: &DirectorySchema,
) -> Result<Option<DirectoryEntry>, String> {
    match directory {
        DirectorySchema::ActiveDirectory => from_ad(e),
        DirectorySchema::Ldap(schema) => from_ldap(e, schema),
    }
}

/// An entry of a generic LDAP directory, read through its mapping.
fn from_ldap(e: SearchEntry, schema: &LdapSchema) -> Result<Option<DirectoryEntry>, String> {
    let dn = e.dn.clone();
    let v = Values::new(e);
    let classes = v.classes();
    let has = |c: &str| classes.iter().any(|x| x.eq_ignore_ascii_case(c));
    let kind = if has(&schema.group_class) {
        ObjectKind::Group
    } else if schema.contact_class.as_deref().is_some_and(has) {
        ObjectKind::Contact
    } else if has(&schema.user_class) {
        ObjectKind::User
    } else {
        return Ok(None);
    };
    let uuid = v.string("entryuuid");
    let guid: ObjectGuid = uuid
        .trim()
        .parse()
        .map_err(|_| format!("{dn}: entryUUID {uuid:?} is missing or not a UUID (RFC 4530)"))?;
    let text = |field: &str| {
        schema
            .attribute(field)
            .map(|a| v.string(&a.to_lowercase()))
            .unwrap_or_default()
    };
    let texts = |field: &str| {
        schema
            .attribute(field)
            .map(|a| v.strings(&a.to_lowercase()))
            .unwrap_or_default()
    };
    // Bare addresses are aliases; typed ones (smtp:, SMTP:) keep their type.
    let proxy_addresses = texts("aliases")
        .into_iter()
        .map(|a| match a.split_once(':') {
            Some((prefix, _)) if !prefix.contains('@') => a,
            _ => format!("smtp:{a}"),
        })
        .collect();
    let disabled = kind == ObjectKind::User
        && schema
            .disabled_attribute
            .as_ref()
            .is_some_and(|a| schema.is_disabled(&v.strings(&a.to_lowercase())));
    Ok(Some(DirectoryEntry {
        kind: kind as i32,
        object_guid: guid.to_string(),
        mail: text("mail"),
        proxy_addresses,
        display_name: Some(text("display_name"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| v.string("cn")),
        given_name: text("given_name"),
        surname: text("surname"),
        department: text("department"),
        title: text("title"),
        telephone_number: text("telephone_number"),
        company: text("company"),
        manager_dn: text("manager"),
        user_principal_name: text("user_principal_name"),
        sam_account_name: text("username"),
        member_dns: if kind == ObjectKind::Group {
            texts("members")
        } else {
            Vec::new()
        },
        disabled,
        dn,
        ..Default::default()
    }))
}

fn from_ad(e: SearchEntry) -> Result<Option<DirectoryEntry>, String> {
    let dn = e.dn.clone();
    let mut v = Values::new(e);
    let classes = v.classes();
    let has = |c: &str| classes.iter().any(|x| x == c);
    let kind = if has("computer") {
        return Ok(None);
    } else if has("group") {
        ObjectKind::Group
    } else if has("contact") {
        ObjectKind::Contact
    } else if has("user") {
        ObjectKind::User
    } else {
        return Ok(None);
    };
    let guid = v
        .bytes("objectguid")
        .ok_or_else(|| format!("{dn}: no objectGUID"))
        .and_then(|b| ObjectGuid::from_ad_bytes(&b).map_err(|e| format!("{dn}: {e}")))?;
    let err = |m: String| format!("{dn}: {m}");
    Ok(Some(DirectoryEntry {
        kind: kind as i32,
        object_guid: guid.to_string(),
        object_sid: v
            .bytes("objectsid")
            .map(|b| sid_string(&b))
            .unwrap_or_default(),
        user_account_control: v.int("useraccountcontrol").map_err(err)?,
        mail: v.string("mail"),
        proxy_addresses: v.take_strings("proxyaddresses"),
        display_name: v.string("displayname"),
        given_name: v.string("givenname"),
        surname: v.string("sn"),
        department: v.string("department"),
        title: v.string("title"),
        telephone_number: v.string("telephonenumber"),
        company: v.string("company"),
        manager_dn: v.string("manager"),
        user_principal_name: v.string("userprincipalname"),
        sam_account_name: v.string("samaccountname"),
        member_dns: v.take_strings("member"),
        group_type: v.int("grouptype").map_err(err)?,
        when_changed: v.string("whenchanged"),
        usn_changed: v.int("usnchanged").map_err(err)?.unwrap_or_default(),
        disabled: false,
        member_part: 0,
        dn,
    }))
}

/// A binary SID in its `S-1-5-21-…` form.
pub fn sid_string(b: &[u8]) -> String {
    if b.len() < 8 {
        return String::new();
    }
    let revision = b[0];
    let count = usize::from(b[1]);
    let authority = b[2..8]
        .iter()
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    let mut s = format!("S-{revision}-{authority}");
    for i in 0..count {
        let at = 8 + i * 4;
        let Some(chunk) = b.get(at..at + 4) else {
            break;
        };
        let sub = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        s.push_str(&format!("-{sub}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const AD: DirectorySchema = DirectorySchema::ActiveDirectory;

    fn ldap_entry(classes: &[&str], attrs: &[(&str, &[&str])]) -> SearchEntry {
        let mut map: HashMap<String, Vec<String>> = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect();
        map.insert(
            "objectClass".into(),
            classes.iter().map(|c| (*c).to_owned()).collect(),
        );
        SearchEntry {
            dn: "uid=a,ou=people,dc=x".into(),
            attrs: map,
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn generic_ldap_entries() {
        let schema = DirectorySchema::Ldap(LdapSchema::default());
        let uuid = "597ae2f6-16a6-1027-98f4-d28b5365dc14";
        let user = to_directory_entry(
            ldap_entry(
                &["top", "person", "organizationalPerson", "inetOrgPerson"],
                &[
                    ("entryUUID", &[uuid]),
                    ("mail", &["a@example.com"]),
                    (
                        "mailAlternateAddress",
                        &["a.b@example.com", "SMTP:x@example.org"],
                    ),
                    ("uid", &["a"]),
                    ("pwdAccountLockedTime", &["000001010000Z"]),
                    ("member", &["uid=b,dc=x"]),
                ],
            ),
            &schema,
        )
        .expect("ok")
        .expect("a user");
        assert_eq!(user.kind, ObjectKind::User as i32);
        assert_eq!(user.object_guid, uuid);
        assert_eq!(user.sam_account_name, "a");
        assert_eq!(
            user.proxy_addresses,
            ["smtp:a.b@example.com", "SMTP:x@example.org"]
        );
        assert!(user.disabled);
        assert!(user.member_dns.is_empty(), "users have no members");

        let group = to_directory_entry(
            ldap_entry(
                &["groupOfNames"],
                &[
                    ("entryUUID", &[uuid]),
                    ("member", &["uid=a,dc=x", "uid=b,dc=x"]),
                ],
            ),
            &schema,
        )
        .expect("ok")
        .expect("a group");
        assert_eq!(group.kind, ObjectKind::Group as i32);
        assert_eq!(group.member_dns.len(), 2);
        assert_eq!(group.group_type, None);

        let other = to_directory_entry(
            ldap_entry(&["organizationalUnit"], &[("entryUUID", &[uuid])]),
            &schema,
        );
        assert_eq!(other, Ok(None));
        let bad = to_directory_entry(
            ldap_entry(&["inetOrgPerson"], &[("entryUUID", &["nope"])]),
            &schema,
        )
        .expect_err("bad uuid");
        assert!(bad.contains("uid=a,ou=people,dc=x") && bad.contains("entryUUID"));
    }

    fn entry(classes: &[&str], guid: Vec<u8>, text_guid: bool) -> SearchEntry {
        let mut attrs = HashMap::new();
        let mut bin_attrs = HashMap::new();
        attrs.insert(
            "objectClass".to_owned(),
            classes.iter().map(|c| c.to_string()).collect(),
        );
        attrs.insert("mail".to_owned(), vec!["a@example.com".to_owned()]);
        attrs.insert("userAccountControl".to_owned(), vec!["514".to_owned()]);
        if text_guid {
            attrs.insert(
                "objectGUID".to_owned(),
                vec![String::from_utf8(guid).expect("utf8")],
            );
        } else {
            bin_attrs.insert("objectGUID".to_owned(), vec![guid]);
        }
        SearchEntry {
            dn: "CN=A,DC=x".to_owned(),
            attrs,
            bin_attrs,
        }
    }

    #[test]
    fn reads_guid_from_either_map() {
        let ascii_guid = b"ABCDEFGHIJKLMNOP".to_vec();
        let from_text = to_directory_entry(entry(&["top", "user"], ascii_guid.clone(), true), &AD)
            .expect("ok")
            .expect("user");
        let from_bin = to_directory_entry(entry(&["top", "user"], ascii_guid, false), &AD)
            .expect("ok")
            .expect("user");
        assert_eq!(from_text.object_guid, from_bin.object_guid);
        assert_eq!(from_text.user_account_control, Some(514));
        assert_eq!(from_text.kind, ObjectKind::User as i32);
    }

    #[test]
    fn kinds_and_skips() {
        let g = vec![0u8; 16];
        let grp = to_directory_entry(entry(&["top", "group"], g.clone(), false), &AD).expect("ok");
        assert_eq!(grp.map(|e| e.kind), Some(ObjectKind::Group as i32));
        let computer =
            to_directory_entry(entry(&["top", "user", "computer"], g.clone(), false), &AD)
                .expect("ok");
        assert!(computer.is_none());
        let bad = to_directory_entry(entry(&["user"], vec![1, 2], false), &AD);
        assert!(bad.expect_err("short guid").contains("CN=A,DC=x"));
    }

    #[test]
    fn sid_formatting() {
        let sid = [
            1u8, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0xe8, 0x03, 0, 0,
        ];
        assert_eq!(sid_string(&sid), "S-1-5-21-1-2-1000");
    }
}
