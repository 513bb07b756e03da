//! What kind of directory an integration reads, and for generic LDAP
//! directories (OpenLDAP and the like) which object classes and attributes
//! hold users, groups, contacts and their properties.
//!
//! Active Directory needs no mapping: its schema is fixed. A generic LDAP
//! directory is read through [`LdapSchema`]: entries are anchored on
//! `entryUUID` (RFC 4530), which survives renames and moves like AD's
//! objectGUID, and every property comes from a mapped attribute whose
//! default suits `inetOrgPerson` / `groupOfNames`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::field::FieldError;

/// Global Catalog ports: the `member` attribute is not replicated there.
pub const GLOBAL_CATALOG_PORTS: [u16; 2] = [3268, 3269];

/// The directory an integration reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DirectorySchema {
    #[default]
    ActiveDirectory,
    Ldap(LdapSchema),
}

/// The properties a generic LDAP directory maps, with their default
/// attribute and what they mean. An empty attribute leaves the property
/// unread.
pub const LDAP_FIELDS: &[(&str, &str, &str)] = &[
    ("mail", "mail", "the primary email address"),
    (
        "aliases",
        "mailAlternateAddress",
        "further addresses: bare (alias@example.com) or typed (smtp:alias@example.com, SMTP: marks the primary)",
    ),
    ("display_name", "displayName", "display name"),
    ("given_name", "givenName", "given name"),
    ("surname", "sn", "surname"),
    ("department", "departmentNumber", "department"),
    ("title", "title", "job title"),
    ("telephone_number", "telephoneNumber", "telephone number"),
    ("company", "o", "company"),
    ("manager", "manager", "the manager's DN"),
    ("username", "uid", "the sign-in name"),
    (
        "user_principal_name",
        "",
        "a user principal name, when the directory has one",
    ),
    ("members", "member", "a group's member DNs"),
];

pub const DEFAULT_USER_CLASS: &str = "inetOrgPerson";
pub const DEFAULT_GROUP_CLASS: &str = "groupOfNames";
/// ppolicy's lock: an account with this attribute cannot bind.
pub const DEFAULT_DISABLED_ATTRIBUTE: &str = "pwdAccountLockedTime";

/// How a generic LDAP directory holds users, groups and contacts. Every
/// field is filled: defaults are applied when the settings are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapSchema {
    pub user_class: String,
    pub group_class: String,
    /// `None`: the directory's contacts are not read.
    pub contact_class: Option<String>,
    /// A user with this attribute is disabled (`None`: nobody is).
    pub disabled_attribute: Option<String>,
    /// When not empty, only these values (case-insensitive) mean disabled,
    /// e.g. `TRUE` for `nsAccountLock`.
    pub disabled_values: Vec<String>,
    /// Property (a key of [`LDAP_FIELDS`]) → attribute; every key present,
    /// an empty attribute meaning "not read".
    pub attributes: BTreeMap<String, String>,
}

impl Default for LdapSchema {
    fn default() -> Self {
        Self {
            user_class: DEFAULT_USER_CLASS.into(),
            group_class: DEFAULT_GROUP_CLASS.into(),
            contact_class: None,
            disabled_attribute: Some(DEFAULT_DISABLED_ATTRIBUTE.into()),
            disabled_values: Vec::new(),
            attributes: LDAP_FIELDS
                .iter()
                .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// The mapping as an admin (or a bus message) sends it: empty fields take
/// their defaults.
#[derive(Debug, Clone, Default)]
pub struct LdapSchemaInput<'a> {
    pub user_class: &'a str,
    pub group_class: &'a str,
    pub contact_class: &'a str,
    /// `None`: the default; `Some("")`: no disabled state.
    pub disabled_attribute: Option<&'a str>,
    pub disabled_values: &'a [String],
    pub attributes: Vec<(&'a str, &'a str)>,
}

/// An attribute description without options: a name (letters, digits,
/// hyphens, starting with a letter) or a numeric OID.
pub fn is_attribute_name(s: &str) -> bool {
    let name = !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        });
    name || oid
}

impl LdapSchema {
    /// Validates a mapping; errors name the field under `prefix` (e.g.
    /// `settings.ldap_schema`).
    pub fn parse(input: &LdapSchemaInput<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut schema = Self::default();
        let mut class = |field: &'static str, value: &str, into: &mut String| {
            let v = value.trim();
            if v.is_empty() {
                return;
            }
            if is_attribute_name(v) {
                *into = v.to_owned();
            } else {
                errors.push(FieldError::new(
                    field,
                    format!("{v:?} is not an object class name, e.g. inetOrgPerson"),
                ));
            }
        };
        class(
            "settings.ldap_schema.user_class",
            input.user_class,
            &mut schema.user_class,
        );
        class(
            "settings.ldap_schema.group_class",
            input.group_class,
            &mut schema.group_class,
        );
        let mut contact = String::new();
        class(
            "settings.ldap_schema.contact_class",
            input.contact_class,
            &mut contact,
        );
        schema.contact_class = Some(contact).filter(|c| !c.is_empty());
        let classes = [
            Some(&schema.user_class),
            Some(&schema.group_class),
            schema.contact_class.as_ref(),
        ];
        let named: Vec<String> = classes.iter().flatten().map(|c| c.to_lowercase()).collect();
        if named
            .iter()
            .enumerate()
            .any(|(i, c)| named[..i].contains(c))
        {
            errors.push(FieldError::new(
                "settings.ldap_schema",
                "the user, group and contact classes must differ",
            ));
        }

        match input.disabled_attribute.map(str::trim) {
            None => {}
            Some("") => schema.disabled_attribute = None,
            Some(a) if is_attribute_name(a) => schema.disabled_attribute = Some(a.to_owned()),
            Some(a) => errors.push(FieldError::new(
                "settings.ldap_schema.disabled_attribute",
                format!(
                    "{a:?} is not an attribute name, e.g. pwdAccountLockedTime or nsAccountLock"
                ),
            )),
        }
        schema.disabled_values = input
            .disabled_values
            .iter()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if !schema.disabled_values.is_empty() && schema.disabled_attribute.is_none() {
            errors.push(FieldError::new(
                "settings.ldap_schema.disabled_values",
                "apply only with a disabled_attribute",
            ));
        }

        for (key, value) in &input.attributes {
            let value = value.trim();
            if !LDAP_FIELDS.iter().any(|(k, _, _)| k == key) {
                let known: Vec<&str> = LDAP_FIELDS.iter().map(|(k, _, _)| *k).collect();
                errors.push(FieldError::new(
                    "settings.ldap_schema.attributes",
                    format!(
                        "{key:?} is not a mapped property; use one of {}",
                        known.join(", ")
                    ),
                ));
            } else if !value.is_empty() && !is_attribute_name(value) {
                errors.push(FieldError::new(
                    "settings.ldap_schema.attributes",
                    format!("{key}: {value:?} is not an attribute name, e.g. mail"),
                ));
            } else {
                schema
                    .attributes
                    .insert((*key).to_owned(), value.to_owned());
            }
        }
        if errors.is_empty() {
            Ok(schema)
        } else {
            Err(errors)
        }
    }

    /// The attribute a property is read from; `None` when it is not read.
    pub fn attribute(&self, field: &str) -> Option<&str> {
        self.attributes
            .get(field)
            .map(String::as_str)
            .filter(|a| !a.is_empty())
    }

    /// The search filter of the objects a sync reads.
    pub fn filter(&self, include_contacts: bool) -> String {
        let mut f = format!(
            "(|(objectClass={})(objectClass={})",
            self.user_class, self.group_class
        );
        if let (true, Some(c)) = (include_contacts, &self.contact_class) {
            f.push_str(&format!("(objectClass={c})"));
        }
        f.push(')');
        f
    }

    /// The attributes a sync asks for.
    pub fn requested_attributes(&self) -> Vec<String> {
        // cn names an object that has no display name (groupOfNames).
        let mut out = vec![
            "entryUUID".to_owned(),
            "objectClass".to_owned(),
            "cn".to_owned(),
        ];
        out.extend(self.disabled_attribute.clone());
        for (k, _, _) in LDAP_FIELDS {
            if let Some(a) = self.attribute(k)
                && !out.iter().any(|o| o.eq_ignore_ascii_case(a))
            {
                out.push(a.to_owned());
            }
        }
        out
    }

    /// Whether a user whose disabled attribute holds `values` is disabled.
    pub fn is_disabled(&self, values: &[String]) -> bool {
        if self.disabled_attribute.is_none() || values.is_empty() {
            return false;
        }
        self.disabled_values.is_empty()
            || values.iter().any(|v| {
                self.disabled_values
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(v.trim()))
            })
    }
}

impl DirectorySchema {
    /// Whether `port` is an AD Global Catalog port, which does not hold the
    /// member attribute: groups sync without their members.
    pub fn is_global_catalog(&self, port: u16) -> bool {
        *self == Self::ActiveDirectory && GLOBAL_CATALOG_PORTS.contains(&port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_every_property() {
        let s = LdapSchema::parse(&LdapSchemaInput::default()).expect("defaults are valid");
        assert_eq!(s, LdapSchema::default());
        assert_eq!(s.attribute("mail"), Some("mail"));
        assert_eq!(s.attribute("user_principal_name"), None);
        assert_eq!(
            s.filter(true),
            "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))"
        );
        let attrs = s.requested_attributes();
        assert!(attrs.contains(&"entryUUID".to_owned()));
        assert!(attrs.contains(&"pwdAccountLockedTime".to_owned()));
    }

    #[test]
    fn overrides_and_errors() {
        let values = vec!["TRUE".to_owned()];
        let s = LdapSchema::parse(&LdapSchemaInput {
            group_class: "groupOfUniqueNames",
            contact_class: "mailRecipient",
            disabled_attribute: Some("nsAccountLock"),
            disabled_values: &values,
            attributes: vec![("members", "uniqueMember"), ("company", "")],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(s.attribute("members"), Some("uniqueMember"));
        assert_eq!(s.attribute("company"), None);
        assert!(s.filter(true).contains("(objectClass=mailRecipient)"));
        assert!(!s.filter(false).contains("mailRecipient"));
        assert!(s.is_disabled(&["true".into()]));
        assert!(!s.is_disabled(&["false".into()]));
        assert!(!s.is_disabled(&[]));

        let errs = LdapSchema::parse(&LdapSchemaInput {
            user_class: "inet OrgPerson",
            group_class: "inetOrgPerson",
            disabled_attribute: Some("bad attr"),
            attributes: vec![("favourite_colour", "x"), ("mail", "mail;lang-en")],
            ..Default::default()
        })
        .expect_err("invalid");
        let fields: Vec<&str> = errs.iter().map(|e| e.field).collect();
        assert!(fields.contains(&"settings.ldap_schema.user_class"));
        assert!(fields.contains(&"settings.ldap_schema.disabled_attribute"));
        assert_eq!(
            fields
                .iter()
                .filter(|f| **f == "settings.ldap_schema.attributes")
                .count(),
            2
        );
        assert!(errs.iter().any(|e| e.message.contains("favourite_colour")));
    }

    #[test]
    fn no_disabled_attribute() {
        let s = LdapSchema::parse(&LdapSchemaInput {
            disabled_attribute: Some(""),
            ..Default::default()
        })
        .expect("valid");
        assert!(!s.is_disabled(&["x".into()]));
        assert!(is_attribute_name("2.5.4.3"));
        assert!(!is_attribute_name("2..5"));
    }
}
