//! The settings of an integration, validated.
//!
//! [`IntegrationSettings::validate`] is the one place where what an admin
//! sends is checked; every error names the field (as the API calls it),
//! says what is wrong and gives an example of right. What the API received
//! reaches it as a [`SettingsInput`], read at the edge (dirsync-convert).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::dn::Dn;
use crate::email::is_valid_domain;
use crate::field::FieldError;
use crate::schema::{DirectorySchema, LdapSchema, LdapSchemaInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionMode {
    /// Chain verifies to a trusted CA, the host name matches, key > 1024 bits.
    Strict,
    /// Self-signed, short key or incomplete chain accepted; still encrypted.
    Relaxed,
}

/// Every setting of an integration but the bind password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSettings {
    pub name: String,
    pub description: String,
    pub host: String,
    pub alternate_host: Option<String>,
    pub port: u16,
    /// `None`: no encryption (plain LDAP, which most DCs refuse for binds).
    pub encryption: Option<EncryptionMode>,
    pub user_dn: Dn,
    pub root_dn: Dn,
    pub acknowledge_disabled_accounts: bool,
    /// Lower-cased; empty means every domain.
    pub filter_email_domains: Vec<String>,
    pub include_contacts: bool,
    pub maximum_sync_deletions: u64,
    pub delete_users: bool,
    pub enabled: bool,
    /// Collectors of this partition take the integration's jobs; `None`:
    /// the Root DN's DNS domain.
    pub partition: Option<String>,
    /// Own times of day (`08:00,13:00`); `None`: the account's schedule.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Active Directory, or a generic LDAP directory and its mapping.
    #[serde(default)]
    pub directory: DirectorySchema,
    /// Minutes between delta syncs; 0: none.
    #[serde(default = "default_delta_interval")]
    pub delta_interval_minutes: u32,
    /// How delta syncs of Active Directory read the changes.
    #[serde(default, skip_serializing_if = "DeltaMethod::is_default")]
    pub delta_method: DeltaMethod,
    /// Without encryption, binds send passwords in clear: only when this
    /// says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_bind: bool,
}

/// How delta syncs of Active Directory read what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeltaMethod {
    /// The DirSync control, and uSNChanged polling where the domain
    /// controller refuses it.
    #[default]
    DirSync,
    /// uSNChanged polling only.
    UsnChanged,
}

impl DeltaMethod {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Minutes between delta syncs unless an integration says otherwise.
pub const DEFAULT_DELTA_INTERVAL_MINUTES: u32 = 5;
/// The longest delta interval: a day, the longest a schedule leaves
/// between full syncs.
pub const MAX_DELTA_INTERVAL_MINUTES: u32 = 1440;

fn default_delta_interval() -> u32 {
    DEFAULT_DELTA_INTERVAL_MINUTES
}

/// The kind of directory an admin chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryKind {
    ActiveDirectory,
    /// OpenLDAP and the like, through a mapping.
    Ldap,
}

/// A generic LDAP directory's mapping as sent: empty fields take their
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapSchemaFields {
    pub user_class: String,
    pub group_class: String,
    pub contact_class: String,
    /// `None`: the default; empty: none.
    pub disabled_attribute: Option<String>,
    pub disabled_values: Vec<String>,
    /// Property → attribute.
    pub attributes: std::collections::HashMap<String, String>,
}

/// An integration's settings as an admin sends them, unchecked: what
/// [`IntegrationSettings::validate`] reads. `None` is a value left unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsInput {
    pub name: String,
    pub description: String,
    /// `None`: Active Directory.
    pub directory: Option<DirectoryKind>,
    pub ldap_schema: Option<LdapSchemaFields>,
    pub host: String,
    pub alternate_host: String,
    /// `None`: on.
    pub encrypt: Option<bool>,
    /// `None`: Strict when encrypting.
    pub encryption_mode: Option<EncryptionMode>,
    /// 0: the port of the encryption chosen.
    pub port: u32,
    pub user_dn: String,
    pub root_dn: String,
    pub acknowledge_disabled_accounts: bool,
    /// Comma-separated.
    pub filter_email_domains: String,
    pub include_contacts: bool,
    pub maximum_sync_deletions: i64,
    pub delete_users: bool,
    /// `None`: on.
    pub enabled: Option<bool>,
    pub partition: String,
    pub schedule: String,
    /// `None`: the default interval.
    pub delta_interval_minutes: Option<u32>,
    /// `None`: DirSync.
    pub delta_method: Option<DeltaMethod>,
    pub allow_insecure_bind: bool,
}

impl IntegrationSettings {
    /// Validates what an admin sent. Returns every problem found, not
    /// only the first, so an admin can fix a form in one go.
    pub fn validate(s: &SettingsInput) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();

        let name = s.name.trim().to_owned();
        if name.is_empty() {
            errors.push(FieldError::new(
                "settings.name",
                "is required, e.g. \"Head office AD\"",
            ));
        } else if name.chars().count() > 200 {
            errors.push(FieldError::new(
                "settings.name",
                "is longer than 200 characters",
            ));
        }

        let directory = match s.directory {
            None | Some(DirectoryKind::ActiveDirectory) => {
                if s.ldap_schema.is_some() {
                    errors.push(FieldError::new(
                        "settings.ldap_schema",
                        "applies only to DIRECTORY_TYPE_LDAP; Active Directory's schema is fixed",
                    ));
                }
                DirectorySchema::ActiveDirectory
            }
            Some(DirectoryKind::Ldap) => {
                let m = s.ldap_schema.clone().unwrap_or_default();
                let input = LdapSchemaInput {
                    user_class: &m.user_class,
                    group_class: &m.group_class,
                    contact_class: &m.contact_class,
                    disabled_attribute: m.disabled_attribute.as_deref(),
                    disabled_values: &m.disabled_values,
                    attributes: m
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                };
                match LdapSchema::parse(&input) {
                    Ok(schema) => DirectorySchema::Ldap(schema),
                    Err(e) => {
                        errors.extend(e);
                        DirectorySchema::ActiveDirectory
                    }
                }
            }
        };

        let host = s.host.trim().to_owned();
        if host.is_empty() {
            errors.push(FieldError::new(
                "settings.host",
                "is required: the host name or IP address of a domain controller, e.g. dc1.corp.example.com",
            ));
        } else if let Ok((_, Some(port))) = split_host_port(&host) {
            errors.push(FieldError::new(
                "settings.host",
                format!(
                    "{host:?} names port {port}: give the domain controller's port in settings.port (the alternate host may name a port of its own)"
                ),
            ));
        } else if let Err(e) = check_host(&host) {
            errors.push(FieldError::new("settings.host", e));
        }
        let alternate_host = match s.alternate_host.trim() {
            "" => None,
            alt => {
                if let Err(e) = split_host_port(alt).and_then(|(h, _)| check_host(&h)) {
                    errors.push(FieldError::new("settings.alternate_host", e));
                }
                Some(alt.to_owned())
            }
        };

        let encrypt = s.encrypt.unwrap_or(true);
        let encryption = match (encrypt, s.encryption_mode) {
            (true, Some(EncryptionMode::Strict) | None) => Some(EncryptionMode::Strict),
            (true, Some(EncryptionMode::Relaxed)) => Some(EncryptionMode::Relaxed),
            (false, None) => {
                if !s.allow_insecure_bind {
                    errors.push(FieldError::new(
                        "settings.encrypt",
                        "is off, so binds would send the password (the bind account's, and each user's at sign-in) across the network in clear: turn encryption on (LDAPS, or StartTLS on 389), or set allow_insecure_bind to accept that",
                    ));
                }
                None
            }
            (false, Some(_)) => {
                errors.push(FieldError::new(
                    "settings.encryption_mode",
                    "applies only when encrypt is true; set encrypt=true (recommended) or leave the mode unset",
                ));
                None
            }
        };

        let port = match s.port {
            0 if encrypt => 636,
            0 => 389,
            p => match u16::try_from(p) {
                Ok(p) => p,
                Err(_) => {
                    errors.push(FieldError::new(
                        "settings.port",
                        format!(
                            "{p} is out of range 1-65535; use 636 (LDAPS), 389 (LDAP), 3269 or 3268 (Global Catalog)"
                        ),
                    ));
                    0
                }
            },
        };

        let user_dn = parse_dn(
            "settings.user_dn",
            &s.user_dn,
            "CN=dirsync,OU=Service Accounts,DC=corp,DC=example,DC=com",
            &mut errors,
        );
        let root_dn = parse_dn(
            "settings.root_dn",
            &s.root_dn,
            "OU=New York,DC=corp,DC=example,DC=com",
            &mut errors,
        );

        let mut filter_email_domains = Vec::new();
        if !s.filter_email_domains.is_empty() {
            for d in s.filter_email_domains.split(',') {
                if d.is_empty() || d.chars().any(char::is_whitespace) || !is_valid_domain(d) {
                    errors.push(FieldError::new(
                        "settings.filter_email_domains",
                        format!(
                            "{d:?} is not a domain; list domains separated by commas with no spaces, e.g. example.com,example.org"
                        ),
                    ));
                } else {
                    filter_email_domains.push(d.to_lowercase());
                }
            }
        }

        let maximum_sync_deletions = match u64::try_from(s.maximum_sync_deletions) {
            Ok(n) => n,
            Err(_) => {
                errors.push(FieldError::new(
                    "settings.maximum_sync_deletions",
                    format!(
                        "{} is negative; use 0 or more, e.g. 50",
                        s.maximum_sync_deletions
                    ),
                ));
                0
            }
        };

        let partition = match s.partition.trim() {
            "" => None,
            p if p.len() <= 64
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) =>
            {
                Some(p.to_lowercase())
            }
            p => {
                errors.push(FieldError::new(
                    "settings.partition",
                    format!(
                        "{p:?} is not a partition label (1-64 letters, digits, '.', '-' or '_', e.g. corp.example.com or emea)"
                    ),
                ));
                None
            }
        };

        let schedule = match s.schedule.trim() {
            "" => None,
            text => match crate::schedule::Schedule::parse("UTC", text) {
                Ok(parsed) => Some(parsed.times_text()),
                Err(e) => {
                    errors.push(FieldError::new("settings.schedule", e.to_string()));
                    None
                }
            },
        };

        let delta_interval_minutes = s
            .delta_interval_minutes
            .unwrap_or(DEFAULT_DELTA_INTERVAL_MINUTES);
        if delta_interval_minutes > MAX_DELTA_INTERVAL_MINUTES {
            errors.push(FieldError::new(
                "settings.delta_interval_minutes",
                format!(
                    "{delta_interval_minutes} minutes is longer than a day; use 1 to {MAX_DELTA_INTERVAL_MINUTES}, or 0 for no delta syncs"
                ),
            ));
        }

        let delta_method = match s.delta_method {
            None | Some(DeltaMethod::DirSync) => DeltaMethod::DirSync,
            Some(DeltaMethod::UsnChanged) if s.directory == Some(DirectoryKind::Ldap) => {
                errors.push(FieldError::new(
                    "settings.delta_method",
                    "DELTA_METHOD_USN_CHANGED applies only to Active Directory; leave it unset for DIRECTORY_TYPE_LDAP",
                ));
                DeltaMethod::DirSync
            }
            Some(DeltaMethod::UsnChanged) => DeltaMethod::UsnChanged,
        };

        match (user_dn, root_dn) {
            (Some(user_dn), Some(root_dn)) if errors.is_empty() => Ok(Self {
                name,
                description: s.description.trim().to_owned(),
                host,
                alternate_host,
                port,
                encryption,
                user_dn,
                root_dn,
                acknowledge_disabled_accounts: s.acknowledge_disabled_accounts,
                filter_email_domains,
                include_contacts: s.include_contacts,
                maximum_sync_deletions,
                delete_users: s.delete_users,
                enabled: s.enabled.unwrap_or(true),
                partition,
                schedule,
                directory,
                delta_interval_minutes,
                delta_method,
                allow_insecure_bind: s.allow_insecure_bind && !encrypt,
            }),
            _ => Err(errors),
        }
    }

    /// Whether a run under `other` reads the same objects and derives the
    /// same records as under these settings: what may change between a
    /// full run and the deltas that build on it.
    pub fn reads_as(&self, other: &Self) -> bool {
        let scope = |s: &Self| {
            let mut s = s.clone();
            s.name.clear();
            s.description.clear();
            s.schedule = None;
            s.delta_interval_minutes = 0;
            s.enabled = true;
            s.maximum_sync_deletions = 0;
            s.delete_users = false;
            s.partition = None;
            s
        };
        scope(self) == scope(other)
    }

    /// Warnings that do not make the settings invalid.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.directory.is_global_catalog(self.port) {
            w.push(format!(
                "port {} is a Global Catalog port: groups are synced but their members are not, because the member attribute is not in the Global Catalog",
                self.port
            ));
        }
        if self.encryption.is_none() {
            w.push("encryption is off and insecure binds are allowed: the bind password, and each end user's at sign-in, cross the network in clear (most domain controllers refuse such binds); enable encryption".to_owned());
        }
        w
    }

    /// The partition the integration's jobs go to.
    pub fn partition(&self) -> String {
        self.partition
            .clone()
            .or_else(|| self.root_dn.domain())
            .unwrap_or_else(|| "default".to_owned())
    }

    /// Whether an address domain passes the email-domain filter.
    pub fn domain_in_scope(&self, domain: &str) -> bool {
        self.filter_email_domains.is_empty()
            || self
                .filter_email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

fn parse_dn(
    field: &'static str,
    value: &str,
    example: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Dn> {
    match Dn::parse(value) {
        Ok(dn) => Some(dn),
        Err(e) => {
            errors.push(FieldError::new(
                field,
                format!("is not a valid distinguished name ({e}); e.g. {example}"),
            ));
            None
        }
    }
}

/// A host with an optional port: `dc2.corp.example.com`,
/// `dc2.corp.example.com:3269`, `10.0.0.6:636`, `[2001:db8::6]:636`, or
/// an IPv6 literal without brackets (no port then).
pub fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} in {text:?} is not a port (1-65535)"))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?} opens a [ it does not close"))?;
        return match after {
            "" => Ok((host.to_owned(), None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host.to_owned(), Some(port_of(p)?))),
                None => Err(format!("{text:?}: after ] comes :port or nothing")),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text.to_owned(), None)),
        1 => {
            let (host, p) = text.split_once(':').unwrap_or((text, ""));
            Ok((host.to_owned(), Some(port_of(p)?)))
        }
        // An IPv6 literal: a port needs brackets.
        _ => Ok((text.to_owned(), None)),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is neither a host name nor an IP address; e.g. dc1.corp.example.com or 10.0.0.5 (no scheme)"
        ))
    }
}
