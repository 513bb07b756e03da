//! Distinguished names (RFC 4514) as Active Directory writes them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A syntactically valid DN, kept exactly as written (escapes included).
/// Equality is AD's: case-insensitive, ignoring spaces around `=` and `,`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Dn {
    text: String,
    key: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnError {
    #[error("is empty")]
    Empty,
    #[error("component {0:?} is not of the form attribute=value (e.g. OU=Sales)")]
    NotAttributeValue(String),
    #[error("attribute type {0:?} is not a valid name (letters, digits, '-', or a dotted OID)")]
    BadAttribute(String),
    #[error("component {0:?} has an empty value")]
    EmptyValue(String),
    #[error("ends with a dangling escape '\\'")]
    DanglingEscape,
}

impl Dn {
    pub fn parse(text: &str) -> Result<Self, DnError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DnError::Empty);
        }
        // One pass over the text, one attribute=value at a time; the key
        // is built in one string, from slices of the text. Separators and
        // escapes are ASCII, which never occurs inside a multi-byte UTF-8
        // sequence, so the text is scanned as bytes.
        let bytes = text.as_bytes();
        let mut key = String::with_capacity(text.len());
        let (mut start, mut i) = (0, 0);
        loop {
            let mut separator = None;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if i + 1 == bytes.len() => return Err(DnError::DanglingEscape),
                    b'\\' => i += 2,
                    sep @ (b',' | b';' | b'+') => {
                        separator = Some(sep);
                        break;
                    }
                    _ => i += 1,
                }
            }
            let ava = &text[start..i];
            let Some((attr, value)) = ava.split_once('=') else {
                return Err(DnError::NotAttributeValue(ava.trim().to_owned()));
            };
            let attr = attr.trim();
            let value = value.trim();
            let valid_name = !attr.is_empty()
                && (attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && attr.starts_with(|c: char| c.is_ascii_alphabetic())
                    || attr.chars().all(|c| c.is_ascii_digit() || c == '.'));
            if !valid_name {
                return Err(DnError::BadAttribute(attr.to_owned()));
            }
            if value.is_empty() {
                return Err(DnError::EmptyValue(ava.trim().to_owned()));
            }
            push_lowercase(&mut key, attr);
            key.push('=');
            push_lowercase(&mut key, value);
            match separator {
                None => break,
                // Multi-valued RDNs keep their '+'; ';' is an old ','.
                Some(sep) => key.push(if sep == b'+' { '+' } else { ',' }),
            }
            i += 1;
            start = i;
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The comparison form: lower case, no spaces around separators.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The DNS domain of the DN's `DC=` components (`corp.example.com`), or
    /// `None` when it has none.
    pub fn domain(&self) -> Option<String> {
        let labels: Vec<&str> = self
            .key
            .split(',')
            .filter_map(|rdn| rdn.strip_prefix("dc="))
            .collect();
        (!labels.is_empty()).then(|| labels.join("."))
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        self.key == ancestor.key || self.key.ends_with(&format!(",{}", ancestor.key))
    }
}

/// Appends `s` in lower case (Unicode rules; ASCII without a copy).
fn push_lowercase(out: &mut String, s: &str) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        out.push_str(&s.to_lowercase());
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Dn {}

impl std::hash::Hash for Dn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dn({:?})", self.text)
    }
}

impl TryFrom<String> for Dn {
    type Error = DnError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Dn::parse(&s)
    }
}

impl From<Dn> for String {
    fn from(d: Dn) -> String {
        d.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ad_dns_with_escapes_and_unicode() {
        let dn = Dn::parse(r"CN=Smith\, Erin,OU=People,DC=corp,DC=example").expect("valid");
        assert_eq!(dn.as_str(), r"CN=Smith\, Erin,OU=People,DC=corp,DC=example");
        assert!(Dn::parse("CN=Zoë Ærø,OU=Sync,DC=x").is_ok());
        assert!(Dn::parse(r#"CN=a\+b\"c,DC=x"#).is_ok());
        assert!(Dn::parse("CN=a+UID=b,DC=x").is_ok());
    }

    #[test]
    fn equality_is_case_and_space_insensitive() {
        let a = Dn::parse("CN=Alice,OU=Sync,DC=Corp").expect("valid");
        let b = Dn::parse("cn=alice, ou=sync , dc=corp").expect("valid");
        assert_eq!(a, b);
        let root = Dn::parse("OU=Sync,DC=corp").expect("valid");
        assert!(a.is_within(&root));
        assert!(!root.is_within(&a));
        let other = Dn::parse("OU=NotSync,DC=corp").expect("valid");
        assert!(!a.is_within(&other));
        assert_eq!(a.domain().as_deref(), Some("corp"));
        assert_eq!(
            Dn::parse("OU=x,DC=Corp,DC=Example,DC=com")
                .expect("valid")
                .domain()
                .as_deref(),
            Some("corp.example.com")
        );
        assert_eq!(Dn::parse("OU=x").expect("valid").domain(), None);
    }

    #[test]
    fn keys_keep_escapes_and_lower_every_script() {
        let key = |s: &str| Dn::parse(s).expect("valid").key().to_owned();
        assert_eq!(
            key(r"CN=Smith\, Erin ,OU=People"),
            r"cn=smith\, erin,ou=people"
        );
        assert_eq!(key("CN=ZOË Ærø;DC=X"), "cn=zoë ærø,dc=x");
        assert_eq!(key("CN=A + UID=B,DC=x"), "cn=a+uid=b,dc=x");
        assert_eq!(key(r"CN=a\+b,DC=x"), r"cn=a\+b,dc=x");
        // An escape before a multi-byte character skips all of it.
        assert_eq!(key(r"CN=A\É\,B,DC=x"), r"cn=a\é\,b,dc=x");
        assert_eq!(key(r"CN=a\\,DC=x"), r"cn=a\\,dc=x");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Dn::parse(" "), Err(DnError::Empty));
        assert!(matches!(
            Dn::parse("Alice"),
            Err(DnError::NotAttributeValue(_))
        ));
        assert!(matches!(Dn::parse("CN=,DC=x"), Err(DnError::EmptyValue(_))));
        assert!(matches!(
            Dn::parse("C N=a,DC=x"),
            Err(DnError::BadAttribute(_))
        ));
        assert_eq!(Dn::parse(r"CN=a\"), Err(DnError::DanglingEscape));
        assert!(matches!(
            Dn::parse("CN=a,,DC=x"),
            Err(DnError::NotAttributeValue(_))
        ));
        assert_eq!(
            Dn::parse("CN=a,DC=x,"),
            Err(DnError::NotAttributeValue(String::new()))
        );
        assert_eq!(Dn::parse(r"CN=a\\\"), Err(DnError::DanglingEscape));
    }
}
