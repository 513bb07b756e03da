//! Decoding an LDAP search entry into a bus `DirectoryEntry`.

use ldap3::asn1::{PL, StructureTag, TagClass};

use dirsync_core::schema::LDAP_FIELDS;
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
    // A name for an object without a display name (groups often have none).
    "cn",
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

/// A search result entry as the directory sent it: its DN and each
/// attribute's values as bytes, attribute names lower-cased (they are
/// ASCII, RFC 4512). Read straight from the BER: the values are moved out
/// of it, not copied into maps, and a malformed entry is an error that
/// names what is wrong, not a panic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl RawEntry {
    /// The values of attribute `name` (any case), in every part it came in.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attrs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(Vec::as_slice))
    }

    /// The first value of attribute `name`, as text.
    pub fn first_text(&self, name: &str) -> Option<String> {
        self.values(name)
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Reads a SearchResultEntry (RFC 4511 4.5.2): `[APPLICATION 4]
    /// SEQUENCE { objectName, attributes SEQUENCE OF SEQUENCE { type,
    /// vals SET OF value } }`.
    ///
    /// The codec keeps an entry without controls as the bytes it arrived
    /// as (a primitive `[APPLICATION 4]` holding the SEQUENCE's contents):
    /// those are read here element by element, without a tree of tags.
    pub fn read(entry: StructureTag) -> Result<Self, String> {
        let bad = |what: String| format!("a search result entry could not be read: {what}");
        if entry.class == TagClass::Application
            && entry.id == 4
            && let PL::P(bytes) = &entry.payload
        {
            return Self::read_contents(bytes).map_err(bad);
        }
        let mut parts = entry
            .match_id(4)
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| bad("it is not a SearchResultEntry".into()))?
            .into_iter();
        let dn = parts
            .next()
            .and_then(StructureTag::expect_primitive)
            .ok_or_else(|| bad("it has no objectName".into()))?;
        let dn = String::from_utf8(dn).map_err(|_| bad("its DN is not UTF-8".into()))?;
        let list = parts
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| bad(format!("{dn} has no attribute list")))?;
        let mut attrs = Vec::with_capacity(list.len());
        for attribute in list {
            let mut pair = attribute
                .expect_constructed()
                .ok_or_else(|| bad(format!("{dn}: an attribute is not a sequence")))?
                .into_iter();
            let mut name = pair
                .next()
                .and_then(StructureTag::expect_primitive)
                .and_then(|n| String::from_utf8(n).ok())
                .ok_or_else(|| bad(format!("{dn}: an attribute has no readable type")))?;
            name.make_ascii_lowercase();
            let values = pair
                .next()
                .and_then(StructureTag::expect_constructed)
                .ok_or_else(|| bad(format!("{dn}: attribute {name} has no value set")))?
                .into_iter()
                .map(|v| {
                    let v = v.expect_primitive().ok_or_else(|| {
                        bad(format!("{dn}: a value of {name} is not an octet string"))
                    })?;
                    check_value_size(&dn, &name, &v).map_err(bad)?;
                    Ok::<_, String>(v)
                })
                .collect::<Result<Vec<_>, _>>()?;
            attrs.push((name, values));
        }
        Ok(Self { dn, attrs })
    }

    /// Reads the contents of a SearchResultEntry's SEQUENCE: objectName,
    /// then the attribute list.
    fn read_contents(bytes: &[u8]) -> Result<Self, String> {
        let mut entry = Ber(bytes);
        let dn = entry
            .primitive()
            .map_err(|e| format!("its objectName: {e}"))?;
        let dn = String::from_utf8(dn.to_vec()).map_err(|_| "its DN is not UTF-8".to_owned())?;
        let mut list = Ber(entry
            .constructed()
            .map_err(|e| format!("{dn} has no attribute list: {e}"))?);
        let mut attrs = Vec::new();
        while !list.0.is_empty() {
            let mut pair = Ber(list
                .constructed()
                .map_err(|e| format!("{dn}: an attribute is not a sequence: {e}"))?);
            let mut name = pair
                .primitive()
                .ok()
                .and_then(|n| String::from_utf8(n.to_vec()).ok())
                .ok_or_else(|| format!("{dn}: an attribute has no readable type"))?;
            name.make_ascii_lowercase();
            let mut set = Ber(pair
                .constructed()
                .map_err(|e| format!("{dn}: attribute {name} has no value set: {e}"))?);
            let mut values = Vec::new();
            while !set.0.is_empty() {
                let value = set
                    .primitive()
                    .map_err(|e| format!("{dn}: a value of {name} is not an octet string: {e}"))?;
                check_value_size(&dn, &name, value)?;
                values.push(value.to_vec());
            }
            attrs.push((name, values));
        }
        Ok(Self { dn, attrs })
    }
}

/// The longest attribute value dirsync reads. Every attribute it asks for
/// is short (names, addresses, GUIDs, SIDs, DNs: Active Directory caps a
/// display name at 256 characters); a longer value is a broken or hostile
/// directory, and its entry is skipped, saying so, rather than stored.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

fn check_value_size(dn: &str, name: &str, value: &[u8]) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "{dn}: a value of {name} is {} bytes, more than the {MAX_VALUE_BYTES} dirsync reads",
            value.len()
        ));
    }
    Ok(())
}

/// A control's or an intermediate response's value as a tree of tags;
/// `None` when it is not BER, or nests deeper than an LDAP value does
/// (the parser recurses once per level: a hostile server's value would
/// overflow the stack).
pub(crate) fn parse_ber(value: &[u8]) -> Option<StructureTag> {
    if !ldap3::asn1::ber_within_depth(value, ldap3::asn1::MAX_DEPTH) {
        return None;
    }
    ldap3::asn1::parse_tag(value).ok().map(|(_, tag)| tag)
}

/// BER elements read one after another from bytes (definite lengths, as
/// LDAP sends them: RFC 4511 5.1).
struct Ber<'a>(&'a [u8]);

impl<'a> Ber<'a> {
    /// The contents of the next element, which must be primitive.
    fn primitive(&mut self) -> Result<&'a [u8], String> {
        self.next(false)
    }

    /// The contents of the next element, which must be constructed.
    fn constructed(&mut self) -> Result<&'a [u8], String> {
        self.next(true)
    }

    fn next(&mut self, constructed: bool) -> Result<&'a [u8], String> {
        let b = self.0;
        let (&tag, rest) = b.split_first().ok_or("the element is missing")?;
        if tag & 0x1f == 0x1f {
            return Err(format!("tag {tag:#04x} has a multi-byte number"));
        }
        if (tag & 0x20 != 0) != constructed {
            return Err(format!(
                "tag {tag:#04x} is {}",
                if constructed {
                    "primitive"
                } else {
                    "constructed"
                }
            ));
        }
        let (&first, rest) = rest.split_first().ok_or("the length is missing")?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(format!("length form {first:#04x} is not a definite length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |l, &b| (l << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(format!(
                "{len} bytes announced, {} left in the entry",
                rest.len()
            ));
        }
        let (contents, after) = rest.split_at(len);
        self.0 = after;
        Ok(contents)
    }
}

/// A value as text; a value that is not UTF-8 with its bad bytes replaced.
fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A value as text, copied; a value that is not UTF-8 with its bad bytes
/// replaced.
fn text_of(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// An entry's attributes, looked up by name (ASCII case-insensitively:
/// names are ASCII, RFC 4512, and the entry's are lower-cased).
struct Values {
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Values {
    fn get(&self, name: &str) -> &[Vec<u8>] {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The values of `name`, taken out: for attributes read once.
    fn take(&mut self, name: &str) -> Vec<Vec<u8>> {
        match self
            .attrs
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(at) => self.attrs.swap_remove(at).1,
            None => Vec::new(),
        }
    }

    /// The values of `name` as text, taken out: for attributes read once.
    fn take_strings(&mut self, name: &str) -> Vec<String> {
        self.take(name).into_iter().map(text).collect()
    }

    /// The first value of `name` as text, taken out: for attributes read
    /// once.
    fn take_string(&mut self, name: &str) -> String {
        self.take(name)
            .into_iter()
            .next()
            .map(text)
            .unwrap_or_default()
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).iter().map(|b| text_of(b)).collect()
    }

    /// Whether the entry is of objectClass `class`.
    fn has_class(&self, class: &str) -> bool {
        self.get("objectclass")
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class.as_bytes()))
    }

    /// The kind of an entry of these object classes (the first that
    /// matches, in this order); `None` for any other entry.
    fn kind(&self, group: &str, contact: Option<&str>, user: &str) -> Option<ObjectKind> {
        if self.has_class(group) {
            Some(ObjectKind::Group)
        } else if contact.is_some_and(|c| self.has_class(c)) {
            Some(ObjectKind::Contact)
        } else if self.has_class(user) {
            Some(ObjectKind::User)
        } else {
            None
        }
    }

    /// The first value of `name`.
    fn first(&self, name: &str) -> Option<String> {
        self.get(name).first().map(|b| text_of(b))
    }

    fn string(&self, name: &str) -> String {
        self.first(name).unwrap_or_default()
    }

    fn int(&self, name: &str) -> Result<Option<i64>, String> {
        match self.get(name).first() {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .map(Some)
                .ok_or_else(|| format!("{name} {:?} is not a number", String::from_utf8_lossy(b))),
        }
    }
}

/// `Ok(None)` for an entry that is not a user, group or contact (e.g. a
/// computer); `Err` names what is wrong with an entry that cannot be read.
pub fn to_directory_entry(
    e: RawEntry,
    directory: &DirectorySchema,
) -> Result<Option<DirectoryEntry>, String> {
    EntryReader::new(directory).read(e)
}

/// How a collection turns its entries into `DirectoryEntry`s: Active
/// Directory's attributes, or a generic LDAP directory's through its
/// mapping, looked up once for the whole collection rather than per entry.
pub enum EntryReader<'a> {
    ActiveDirectory,
    Ldap(Box<LdapReader<'a>>),
}

impl<'a> EntryReader<'a> {
    pub fn new(directory: &'a DirectorySchema) -> Self {
        match directory {
            DirectorySchema::ActiveDirectory => Self::ActiveDirectory,
            DirectorySchema::Ldap(schema) => Self::Ldap(Box::new(LdapReader::new(schema))),
        }
    }

    /// See [`to_directory_entry`]. An entry with a text value that is
    /// not UTF-8 is an error: a directory's text is UTF-8 (RFC 4517), and
    /// a value mangled into replacement characters would overwrite what
    /// the store holds.
    pub fn read(&self, e: RawEntry) -> Result<Option<DirectoryEntry>, String> {
        // objectGUID and objectSid are binary; everything else is text.
        let binary: &[&str] = match self {
            Self::ActiveDirectory => &["objectguid", "objectsid"],
            Self::Ldap(_) => &[],
        };
        if let Some((name, _)) = e.attrs.iter().find(|(name, values)| {
            !binary.contains(&name.as_str())
                && values.iter().any(|v| std::str::from_utf8(v).is_err())
        }) {
            return Err(format!("{}: a value of {name} is not UTF-8 text", e.dn));
        }
        match self {
            Self::ActiveDirectory => from_ad(e),
            Self::Ldap(reader) => reader.read(e),
        }
    }
}

/// Where property `name` is in [`LDAP_FIELDS`]; evaluated in constants,
/// so that a name not there fails the build.
const fn field(name: &str) -> usize {
    let mut i = 0;
    while i < LDAP_FIELDS.len() {
        let (key, name) = (LDAP_FIELDS[i].0.as_bytes(), name.as_bytes());
        if key.len() == name.len() {
            let mut j = 0;
            while j < key.len() && key[j] == name[j] {
                j += 1;
            }
            if j == key.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a property of LDAP_FIELDS")
}

const MAIL: usize = field("mail");
const ALIASES: usize = field("aliases");
const DISPLAY_NAME: usize = field("display_name");
const GIVEN_NAME: usize = field("given_name");
const SURNAME: usize = field("surname");
const DEPARTMENT: usize = field("department");
const TITLE: usize = field("title");
const TELEPHONE_NUMBER: usize = field("telephone_number");
const COMPANY: usize = field("company");
const MANAGER: usize = field("manager");
const USER_PRINCIPAL_NAME: usize = field("user_principal_name");
const USERNAME: usize = field("username");
const MEMBERS: usize = field("members");

/// A generic LDAP directory's mapping, prepared: per property of
/// [`LDAP_FIELDS`], its attribute, if read, and whether anything
/// else reads that attribute too. An attribute read once has its values
/// moved into the entry's text; one read twice is copied.
pub struct LdapReader<'a> {
    schema: &'a LdapSchema,
    fields: [Option<(&'a str, bool)>; LDAP_FIELDS.len()],
}

impl<'a> LdapReader<'a> {
    pub fn new(schema: &'a LdapSchema) -> Self {
        let attributes: [Option<&str>; LDAP_FIELDS.len()] =
            std::array::from_fn(|i| schema.attribute(LDAP_FIELDS[i].0));
        let fields = std::array::from_fn(|i| {
            attributes[i].map(|a| {
                // `cn` is read again for a missing display name.
                let shared = a.eq_ignore_ascii_case("cn")
                    || attributes
                        .iter()
                        .enumerate()
                        .any(|(j, b)| j != i && b.is_some_and(|b| b.eq_ignore_ascii_case(a)));
                (a, shared)
            })
        });
        Self { schema, fields }
    }

    fn read(&self, e: RawEntry) -> Result<Option<DirectoryEntry>, String> {
        let schema = self.schema;
        let dn = e.dn;
        let mut v = Values { attrs: e.attrs };
        let Some(kind) = v.kind(
            &schema.group_class,
            schema.contact_class.as_deref(),
            &schema.user_class,
        ) else {
            return Ok(None);
        };
        let uuid = v
            .get("entryuuid")
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let guid: ObjectGuid = std::str::from_utf8(uuid)
            .ok()
            .and_then(|u| u.trim().parse().ok())
            .ok_or_else(|| {
                format!(
                    "{dn}: entryUUID {:?} is missing or not a UUID (RFC 4530)",
                    String::from_utf8_lossy(uuid)
                )
            })?;
        let disabled = kind == ObjectKind::User
            && schema
                .disabled_attribute
                .as_ref()
                .is_some_and(|a| schema.is_disabled(&v.strings(a)));
        let mut texts = self.fields.map(|field| match field {
            None => Vec::new(),
            Some((a, true)) => v.strings(a),
            Some((a, false)) => v.take_strings(a),
        });
        let mut text = |i: usize| {
            std::mem::take(&mut texts[i])
                .into_iter()
                .next()
                .unwrap_or_default()
        };
        let mail = text(MAIL);
        let display_name = Some(text(DISPLAY_NAME))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| v.string("cn"));
        let given_name = text(GIVEN_NAME);
        let surname = text(SURNAME);
        let department = text(DEPARTMENT);
        let title = text(TITLE);
        let telephone_number = text(TELEPHONE_NUMBER);
        let company = text(COMPANY);
        let manager_dn = text(MANAGER);
        let user_principal_name = text(USER_PRINCIPAL_NAME);
        let sam_account_name = text(USERNAME);
        // Bare addresses are aliases; typed ones (smtp:, SMTP:) keep their type.
        let proxy_addresses = std::mem::take(&mut texts[ALIASES])
            .into_iter()
            .map(|a| match a.split_once(':') {
                Some((prefix, _)) if !prefix.contains('@') => a,
                _ => format!("smtp:{a}"),
            })
            .collect();
        let member_dns = if kind == ObjectKind::Group {
            std::mem::take(&mut texts[MEMBERS])
        } else {
            Vec::new()
        };
        Ok(Some(DirectoryEntry {
            kind: kind as i32,
            object_guid: guid.to_string(),
            mail,
            proxy_addresses,
            display_name,
            given_name,
            surname,
            department,
            title,
            telephone_number,
            company,
            manager_dn,
            user_principal_name,
            sam_account_name,
            member_dns,
            disabled,
            dn,
            ..Default::default()
        }))
    }
}

fn from_ad(e: RawEntry) -> Result<Option<DirectoryEntry>, String> {
    let dn = e.dn;
    let mut v = Values { attrs: e.attrs };
    if v.has_class("computer") {
        return Ok(None);
    }
    let Some(kind) = v.kind("group", Some("contact"), "user") else {
        return Ok(None);
    };
    let guid = v
        .get("objectguid")
        .first()
        .ok_or_else(|| format!("{dn}: no objectGUID"))
        .and_then(|b| ObjectGuid::from_ad_bytes(b).map_err(|e| format!("{dn}: {e}")))?;
    let err = |m: String| format!("{dn}: {m}");
    Ok(Some(DirectoryEntry {
        kind: kind as i32,
        object_guid: guid.to_string(),
        object_sid: v
            .get("objectsid")
            .first()
            .map(|b| sid_string(b))
            .unwrap_or_default(),
        user_account_control: v.int("useraccountcontrol").map_err(err)?,
        mail: v.take_string("mail"),
        proxy_addresses: v.take_strings("proxyaddresses"),
        // Without a display name (groups often have none), the cn, as a
        // generic LDAP directory's.
        display_name: Some(v.take_string("displayname"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| v.take_string("cn")),
        given_name: v.take_string("givenname"),
        surname: v.take_string("sn"),
        department: v.take_string("department"),
        title: v.take_string("title"),
        telephone_number: v.take_string("telephonenumber"),
        company: v.take_string("company"),
        manager_dn: v.take_string("manager"),
        user_principal_name: v.take_string("userprincipalname"),
        sam_account_name: v.take_string("samaccountname"),
        member_dns: v.take_strings("member"),
        group_type: v.int("grouptype").map_err(err)?,
        when_changed: v.take_string("whenchanged"),
        usn_changed: v.int("usnchanged").map_err(err)?.unwrap_or_default(),
        disabled: false,
        member_part: 0,
        dn,
        ..DirectoryEntry::default()
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
    use ldap3::asn1::{PL, TagClass};

    use super::*;

    const AD: DirectorySchema = DirectorySchema::ActiveDirectory;

    /// An entry as [`RawEntry::read`] gives it: names lower-cased.
    fn raw(dn: &str, attrs: Vec<(&str, Vec<Vec<u8>>)>) -> RawEntry {
        RawEntry {
            dn: dn.to_owned(),
            attrs: attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    fn texts(values: &[&str]) -> Vec<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    fn ldap_entry(classes: &[&str], attrs: &[(&str, &[&str])]) -> RawEntry {
        let mut all = vec![("objectClass", texts(classes))];
        all.extend(attrs.iter().map(|(k, v)| (*k, texts(v))));
        raw("uid=a,ou=people,dc=x", all)
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

    #[test]
    fn an_attribute_two_fields_read_is_read_by_both() {
        let mut schema = LdapSchema::default();
        for (field, attribute) in [
            ("aliases", "mail"),
            ("display_name", "cn"),
            ("username", "CN"),
        ] {
            schema.attributes.insert(field.into(), attribute.into());
        }
        let schema = DirectorySchema::Ldap(schema);
        let user = to_directory_entry(
            ldap_entry(
                &["inetOrgPerson"],
                &[
                    ("entryUUID", &["597ae2f6-16a6-1027-98f4-d28b5365dc14"]),
                    ("mail", &["a@example.com", "b@example.com"]),
                    ("cn", &["Ada"]),
                    ("sn", &["Lovelace"]),
                ],
            ),
            &schema,
        )
        .expect("ok")
        .expect("a user");
        assert_eq!(user.mail, "a@example.com");
        assert_eq!(
            user.proxy_addresses,
            ["smtp:a@example.com", "smtp:b@example.com"]
        );
        assert_eq!(
            (user.display_name.as_str(), user.sam_account_name.as_str()),
            ("Ada", "Ada")
        );
        assert_eq!(user.surname, "Lovelace", "read once, moved");

        // Without a display name, cn stands in, though a field took it.
        let mut schema = LdapSchema::default();
        schema
            .attributes
            .insert("display_name".into(), String::new());
        schema.attributes.insert("username".into(), "cn".into());
        let user = to_directory_entry(
            ldap_entry(
                &["inetOrgPerson"],
                &[
                    ("entryUUID", &["597ae2f6-16a6-1027-98f4-d28b5365dc14"]),
                    ("cn", &["Ada"]),
                ],
            ),
            &DirectorySchema::Ldap(schema),
        )
        .expect("ok")
        .expect("a user");
        assert_eq!(
            (user.display_name.as_str(), user.sam_account_name.as_str()),
            ("Ada", "Ada")
        );
    }

    fn entry(classes: &[&str], guid: Vec<u8>) -> RawEntry {
        raw(
            "CN=A,DC=x",
            vec![
                ("objectClass", texts(classes)),
                ("mail", texts(&["a@example.com"])),
                ("userAccountControl", texts(&["514"])),
                ("objectGUID", vec![guid]),
            ],
        )
    }

    fn primitive(id: u64, bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn constructed(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    /// A SearchResultEntry as the BER codec hands it over.
    fn ber_entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> StructureTag {
        let attrs = attrs
            .iter()
            .map(|(name, values)| {
                let values = values.iter().map(|v| primitive(4, v)).collect();
                constructed(
                    TagClass::Universal,
                    16,
                    vec![
                        primitive(4, name.as_bytes()),
                        constructed(TagClass::Universal, 17, values),
                    ],
                )
            })
            .collect();
        constructed(
            TagClass::Application,
            4,
            vec![
                primitive(4, dn.as_bytes()),
                constructed(TagClass::Universal, 16, attrs),
            ],
        )
    }

    #[test]
    fn an_entry_is_read_from_its_ber_with_binary_and_text_values() {
        let guid = [0xffu8, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
        let read = RawEntry::read(ber_entry(
            "CN=Ann,OU=People,DC=x",
            &[
                ("objectClass", &[b"top".as_slice(), b"user".as_slice()]),
                ("objectGUID", &[guid.as_slice()]),
                (
                    "proxyAddresses",
                    &[b"SMTP:ann@x.org".as_slice(), b"smtp:a@x.org".as_slice()],
                ),
                ("displayName", &[b"Ann \xe2\x9c\x93".as_slice()]),
            ],
        ))
        .expect("a well-formed entry");
        assert_eq!(read.dn, "CN=Ann,OU=People,DC=x");
        assert_eq!(
            read.attrs[1],
            ("objectguid".to_owned(), vec![guid.to_vec()])
        );
        let e = to_directory_entry(read, &AD).expect("ok").expect("a user");
        assert_eq!(
            e.object_guid,
            ObjectGuid::from_ad_bytes(&guid).expect("guid").to_string()
        );
        assert_eq!(e.proxy_addresses, ["SMTP:ann@x.org", "smtp:a@x.org"]);
        assert_eq!(e.display_name, "Ann \u{2713}");
    }

    /// The entry as the codec keeps it: its SEQUENCE's contents as bytes.
    fn as_bytes(entry: StructureTag) -> StructureTag {
        let mut encoded = bytes::BytesMut::new();
        ldap3::asn1::write::encode_into(&mut encoded, entry).expect("encodes");
        let contents = Ber(&encoded).constructed().expect("a sequence").to_vec();
        StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::P(contents),
        }
    }

    #[test]
    fn an_entry_kept_as_bytes_reads_as_its_tree_does() {
        let long = vec![b'v'; 300]; // a two-byte length
        let entries = [
            ber_entry(
                "CN=Ann,OU=People,DC=x",
                &[
                    ("objectClass", &[b"top".as_slice(), b"user".as_slice()]),
                    ("objectGUID", &[[0xffu8, 0xfe, 0, 1].as_slice()]),
                    ("description", &[long.as_slice()]),
                    ("member;range=0-*", &[]),
                ],
            ),
            ber_entry("DC=x", &[]),
        ];
        for entry in entries {
            let tree = RawEntry::read(entry.clone()).expect("the tree reads");
            let bytes = as_bytes(entry.clone());
            assert_eq!(RawEntry::read(bytes).expect("the bytes read"), tree);
        }
    }

    #[test]
    fn an_entry_kept_as_bytes_that_is_malformed_is_an_error() {
        let entry = ber_entry("CN=A,DC=x", &[("mail", &[b"a@x.org".as_slice()])]);
        let PL::P(bytes) = as_bytes(entry).payload else {
            unreachable!("kept as bytes")
        };
        let cut = |n: usize| StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::P(bytes[..n].to_vec()),
        };
        let err = RawEntry::read(cut(bytes.len() - 2)).expect_err("cut short");
        assert!(
            err.contains("CN=A,DC=x") && err.contains("announced"),
            "{err}"
        );
        let err = RawEntry::read(cut(0)).expect_err("empty");
        assert!(
            err.contains("objectName") && err.contains("missing"),
            "{err}"
        );
        let mut wrong = bytes.clone();
        wrong[0] = 0x30; // a constructed objectName
        let err = RawEntry::read(StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::P(wrong),
        })
        .expect_err("constructed DN");
        assert!(
            err.contains("objectName") && err.contains("constructed"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_entry_is_an_error_not_a_panic() {
        let not_an_entry = primitive(4, b"x");
        let err = RawEntry::read(not_an_entry).expect_err("not an entry");
        assert!(err.contains("not a SearchResultEntry"), "{err}");
        let no_values = constructed(
            TagClass::Application,
            4,
            vec![
                primitive(4, b"CN=A,DC=x"),
                constructed(
                    TagClass::Universal,
                    16,
                    vec![constructed(
                        TagClass::Universal,
                        16,
                        vec![primitive(4, b"mail")],
                    )],
                ),
            ],
        );
        let err = RawEntry::read(no_values).expect_err("no value set");
        assert!(err.contains("CN=A,DC=x") && err.contains("mail"), "{err}");
        let bad_dn = constructed(TagClass::Application, 4, vec![primitive(4, &[0xff, 0xfe])]);
        assert!(
            RawEntry::read(bad_dn)
                .expect_err("bad dn")
                .contains("not UTF-8")
        );
    }

    #[test]
    fn kinds_and_skips() {
        let g = vec![0u8; 16];
        let grp = to_directory_entry(entry(&["top", "group"], g.clone()), &AD).expect("ok");
        assert_eq!(grp.map(|e| e.kind), Some(ObjectKind::Group as i32));
        let computer =
            to_directory_entry(entry(&["top", "user", "computer"], g.clone()), &AD).expect("ok");
        assert!(computer.is_none());
        let bad = to_directory_entry(entry(&["user"], vec![1, 2]), &AD);
        assert!(bad.expect_err("short guid").contains("CN=A,DC=x"));
    }

    #[test]
    fn an_ad_object_without_a_display_name_is_named_by_its_cn() {
        let group = |extra: Vec<(&str, Vec<Vec<u8>>)>| {
            let mut attrs = vec![
                ("objectClass", texts(&["top", "group"])),
                ("objectGUID", vec![vec![7u8; 16]]),
                ("cn", texts(&["Sales EMEA"])),
            ];
            attrs.extend(extra);
            to_directory_entry(raw("CN=Sales EMEA,OU=Groups,DC=x", attrs), &AD)
                .expect("ok")
                .expect("a group")
        };
        assert_eq!(group(Vec::new()).display_name, "Sales EMEA");
        assert_eq!(
            group(vec![("displayName", texts(&["Sales (EMEA)"]))]).display_name,
            "Sales (EMEA)"
        );
    }

    #[test]
    fn sid_formatting() {
        let sid = [
            1u8, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0xe8, 0x03, 0, 0,
        ];
        assert_eq!(sid_string(&sid), "S-1-5-21-1-2-1000");
    }
}
