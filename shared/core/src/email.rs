//! Email addresses as the directory store keys them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A lower-cased `local@domain` address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an email address (expected local@domain.tld)")]
pub struct EmailError(pub String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let s = s.trim();
        let err = || EmailError(s.to_owned());
        let (local, domain) = s.rsplit_once('@').ok_or_else(err)?;
        if local.is_empty()
            || local.len() > 64
            || local.chars().any(|c| c.is_whitespace() || c.is_control())
            || !is_valid_domain(domain)
        {
            return Err(err());
        }
        Ok(Self(if s.is_ascii() {
            s.to_ascii_lowercase()
        } else {
            s.to_lowercase()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

/// A DNS domain name: dot-separated labels of letters, digits and '-'
/// (internationalized labels allowed), at least two labels.
pub fn is_valid_domain(domain: &str) -> bool {
    let mut labels = 0;
    domain.len() <= 253
        && domain.split('.').all(|l| {
            labels += 1;
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels >= 2
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        let e = EmailAddress::parse(" Alice.Anders@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "alice.anders@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn rejects_non_addresses() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a b@example.com",
            "alice@exa mple.com",
            "alice@-x.com",
            "*)(objectClass=*",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
