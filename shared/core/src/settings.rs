//! The settings of an integration, validated.
//!
//! [`IntegrationSettings::from_api`] is the one place where what an admin
//! sends is checked; every error names the field, says what is wrong and
//! gives an example of right.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use dirsync_proto::api;

use crate::dn::Dn;
use crate::email::is_valid_domain;
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

/// A setting that is not acceptable, named by its API field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Global Catalog ports: the `member` attribute is not replicated there.
pub const GLOBAL_CATALOG_PORTS: [u16; 2] = [3268, 3269];

impl IntegrationSettings {
    /// Validates what the API received. Returns every problem found, not
    /// only the first, so an admin can fix a form in one go.
    pub fn from_api(s: &api::IntegrationSettings) -> Result<Self, Vec<FieldError>> {
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

        let directory = match api::DirectoryType::try_from(s.r#type) {
            Ok(api::DirectoryType::ActiveDirectory | api::DirectoryType::Unspecified) => {
                if s.ldap_schema.is_some() {
                    errors.push(FieldError::new(
                        "settings.ldap_schema",
                        "applies only to DIRECTORY_TYPE_LDAP; Active Directory's schema is fixed",
                    ));
                }
                DirectorySchema::ActiveDirectory
            }
            Ok(api::DirectoryType::Ldap) => {
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
            Err(_) => {
                errors.push(FieldError::new(
                    "settings.type",
                    format!(
                        "{} is not a known directory type; use DIRECTORY_TYPE_ACTIVE_DIRECTORY or DIRECTORY_TYPE_LDAP",
                        s.r#type
                    ),
                ));
                DirectorySchema::ActiveDirectory
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

        let mode = api::EncryptionMode::try_from(s.encryption_mode);
        let encrypt = s.encrypt.unwrap_or(true);
        let encryption = match (encrypt, mode) {
            (true, Ok(api::EncryptionMode::Strict | api::EncryptionMode::Unspecified)) => {
                Some(EncryptionMode::Strict)
            }
            (true, Ok(api::EncryptionMode::Relaxed)) => Some(EncryptionMode::Relaxed),
            (false, Ok(api::EncryptionMode::Unspecified)) => {
                if !s.allow_insecure_bind {
                    errors.push(FieldError::new(
                        "settings.encrypt",
                        "is off, so binds would send the password (the bind account's, and each user's at sign-in) across the network in clear: turn encryption on (LDAPS, or StartTLS on 389), or set allow_insecure_bind to accept that",
                    ));
                }
                None
            }
            (false, Ok(_)) => {
                errors.push(FieldError::new(
                    "settings.encryption_mode",
                    "applies only when encrypt is true; set encrypt=true (recommended) or leave the mode unset",
                ));
                None
            }
            (_, Err(_)) => {
                errors.push(FieldError::new(
                    "settings.encryption_mode",
                    format!(
                        "{} is not a known mode; use ENCRYPTION_MODE_STRICT or ENCRYPTION_MODE_RELAXED",
                        s.encryption_mode
                    ),
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

        let delta_method = match api::DeltaMethod::try_from(s.delta_method) {
            Ok(api::DeltaMethod::Unspecified | api::DeltaMethod::Dirsync) => DeltaMethod::DirSync,
            Ok(api::DeltaMethod::UsnChanged)
                if api::DirectoryType::try_from(s.r#type) == Ok(api::DirectoryType::Ldap) =>
            {
                errors.push(FieldError::new(
                    "settings.delta_method",
                    "DELTA_METHOD_USN_CHANGED applies only to Active Directory; leave it unset for DIRECTORY_TYPE_LDAP",
                ));
                DeltaMethod::DirSync
            }
            Ok(api::DeltaMethod::UsnChanged) => DeltaMethod::UsnChanged,
            Err(_) => {
                errors.push(FieldError::new(
                    "settings.delta_method",
                    format!(
                        "{} is not a known delta method; use DELTA_METHOD_DIRSYNC or DELTA_METHOD_USN_CHANGED",
                        s.delta_method
                    ),
                ));
                DeltaMethod::DirSync
            }
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

    pub fn to_api(&self) -> api::IntegrationSettings {
        api::IntegrationSettings {
            name: self.name.clone(),
            description: self.description.clone(),
            r#type: match self.directory {
                DirectorySchema::ActiveDirectory => api::DirectoryType::ActiveDirectory,
                DirectorySchema::Ldap(_) => api::DirectoryType::Ldap,
            } as i32,
            ldap_schema: match &self.directory {
                DirectorySchema::ActiveDirectory => None,
                DirectorySchema::Ldap(m) => Some(api::LdapSchema {
                    user_class: m.user_class.clone(),
                    group_class: m.group_class.clone(),
                    contact_class: m.contact_class.clone().unwrap_or_default(),
                    disabled_attribute: Some(m.disabled_attribute.clone().unwrap_or_default()),
                    disabled_values: m.disabled_values.clone(),
                    attributes: m.attributes.clone().into_iter().collect(),
                }),
            },
            host: self.host.clone(),
            alternate_host: self.alternate_host.clone().unwrap_or_default(),
            encrypt: Some(self.encryption.is_some()),
            encryption_mode: match self.encryption {
                None => api::EncryptionMode::Unspecified,
                Some(EncryptionMode::Strict) => api::EncryptionMode::Strict,
                Some(EncryptionMode::Relaxed) => api::EncryptionMode::Relaxed,
            } as i32,
            port: u32::from(self.port),
            user_dn: self.user_dn.to_string(),
            root_dn: self.root_dn.to_string(),
            acknowledge_disabled_accounts: self.acknowledge_disabled_accounts,
            filter_email_domains: self.filter_email_domains.join(","),
            include_contacts: self.include_contacts,
            maximum_sync_deletions: i64::try_from(self.maximum_sync_deletions).unwrap_or(i64::MAX),
            delete_users: self.delete_users,
            enabled: Some(self.enabled),
            partition: self.partition.clone().unwrap_or_default(),
            schedule: self.schedule.clone().unwrap_or_default(),
            delta_interval_minutes: Some(self.delta_interval_minutes),
            delta_method: match self.delta_method {
                DeltaMethod::DirSync => api::DeltaMethod::Unspecified,
                DeltaMethod::UsnChanged => api::DeltaMethod::UsnChanged,
            } as i32,
            allow_insecure_bind: self.allow_insecure_bind,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_without_encryption_must_be_allowed() {
        let plain = api::IntegrationSettings {
            encrypt: Some(false),
            encryption_mode: 0,
            port: 389,
            ..valid()
        };
        let e = IntegrationSettings::from_api(&plain).expect_err("refused");
        assert_eq!(e[0].field, "settings.encrypt");
        assert!(e[0].message.contains("allow_insecure_bind"));
        let allowed = IntegrationSettings::from_api(&api::IntegrationSettings {
            allow_insecure_bind: true,
            ..plain
        })
        .expect("allowed");
        assert!(allowed.allow_insecure_bind);
        assert!(allowed.warnings().iter().any(|w| w.contains("in clear")));
        // Meaningless with encryption on: not kept.
        let tls = IntegrationSettings::from_api(&api::IntegrationSettings {
            allow_insecure_bind: true,
            ..valid()
        })
        .expect("valid");
        assert!(!tls.allow_insecure_bind);
        assert!(
            !serde_json::to_string(&tls)
                .expect("json")
                .contains("allow_insecure_bind")
        );
    }

    #[test]
    fn an_alternate_host_may_name_its_own_port() {
        assert_eq!(split_host_port("dc2"), Ok(("dc2".into(), None)));
        assert_eq!(split_host_port("dc2:3269"), Ok(("dc2".into(), Some(3269))));
        assert_eq!(split_host_port("[::1]:636"), Ok(("::1".into(), Some(636))));
        assert_eq!(
            split_host_port("2001:db8::6"),
            Ok(("2001:db8::6".into(), None))
        );
        assert!(split_host_port("dc2:0").is_err());
        assert!(split_host_port("dc2:x").is_err());
        assert!(split_host_port("[::1").is_err());
        let with = |alt: &str| {
            IntegrationSettings::from_api(&api::IntegrationSettings {
                alternate_host: alt.into(),
                ..valid()
            })
        };
        assert_eq!(
            with("dc2.corp.example.com:3269")
                .expect("valid")
                .alternate_host
                .as_deref(),
            Some("dc2.corp.example.com:3269")
        );
        let e = with("dc2:99999").expect_err("bad port");
        assert_eq!(e[0].field, "settings.alternate_host");
        // The primary's port is a setting of its own.
        let e = IntegrationSettings::from_api(&api::IntegrationSettings {
            host: "dc1.corp.example.com:636".into(),
            ..valid()
        })
        .expect_err("a port in the host");
        assert_eq!(e[0].field, "settings.host");
        assert!(e[0].message.contains("settings.port"), "{}", e[0].message);
    }

    fn valid() -> api::IntegrationSettings {
        api::IntegrationSettings {
            name: "HQ".into(),
            host: "dc1.corp.example.com".into(),
            encryption_mode: api::EncryptionMode::Relaxed as i32,
            user_dn: "CN=sync,CN=Users,DC=corp,DC=example,DC=com".into(),
            root_dn: "DC=corp,DC=example,DC=com".into(),
            filter_email_domains: "example.com,Example.org".into(),
            maximum_sync_deletions: 50,
            ..Default::default()
        }
    }

    fn fields(s: api::IntegrationSettings) -> Vec<&'static str> {
        IntegrationSettings::from_api(&s)
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn valid_settings_round_trip() {
        let s = IntegrationSettings::from_api(&valid()).expect("valid");
        assert_eq!(s.port, 636);
        assert_eq!(s.encryption, Some(EncryptionMode::Relaxed));
        assert_eq!(s.filter_email_domains, ["example.com", "example.org"]);
        assert_eq!(s.partition(), "corp.example.com");
        assert!(s.domain_in_scope("EXAMPLE.org"));
        assert!(!s.domain_in_scope("example.net"));
        let back = IntegrationSettings::from_api(&s.to_api()).expect("valid");
        assert_eq!(back, s);
    }

    #[test]
    fn the_delta_method_is_checked_and_kept_out_of_stored_json_by_default() {
        let polled = IntegrationSettings::from_api(&api::IntegrationSettings {
            delta_method: api::DeltaMethod::UsnChanged as i32,
            ..valid()
        })
        .expect("valid");
        assert_eq!(polled.delta_method, DeltaMethod::UsnChanged);
        assert_eq!(
            IntegrationSettings::from_api(&polled.to_api()).expect("valid"),
            polled
        );
        // Changing it changes how deltas read: cursors do not carry over.
        let dirsync = IntegrationSettings::from_api(&valid()).expect("valid");
        assert!(!polled.reads_as(&dirsync));
        // Settings stored before the field existed read as DirSync, and
        // DirSync's settings serialise as they did.
        let json = serde_json::to_string(&dirsync).expect("settings serialise");
        assert!(!json.contains("delta_method"), "{json}");
        assert_eq!(
            serde_json::from_str::<IntegrationSettings>(&json).expect("settings read back"),
            dirsync
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                delta_method: 7,
                ..valid()
            }),
            ["settings.delta_method"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                r#type: api::DirectoryType::Ldap as i32,
                delta_method: api::DeltaMethod::UsnChanged as i32,
                ..valid()
            }),
            ["settings.delta_method"]
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(
            fields(api::IntegrationSettings {
                host: "".into(),
                ..valid()
            }),
            ["settings.host"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                host: "ldaps://dc1:636".into(),
                ..valid()
            }),
            ["settings.host"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                partition: "east coast".into(),
                ..valid()
            }),
            ["settings.partition"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                port: 70000,
                ..valid()
            }),
            ["settings.port"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                root_dn: "corp.example.com".into(),
                ..valid()
            }),
            ["settings.root_dn"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                filter_email_domains: "example.com, example.org".into(),
                ..valid()
            }),
            ["settings.filter_email_domains"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                encrypt: Some(false),
                ..valid()
            }),
            ["settings.encryption_mode"]
        );
        assert_eq!(
            fields(api::IntegrationSettings {
                maximum_sync_deletions: -1,
                name: " ".into(),
                user_dn: "bob".into(),
                ..valid()
            }),
            [
                "settings.name",
                "settings.user_dn",
                "settings.maximum_sync_deletions"
            ]
        );
    }

    #[test]
    fn global_catalog_port_warns() {
        let s = IntegrationSettings::from_api(&api::IntegrationSettings {
            port: 3269,
            ..valid()
        })
        .expect("valid");
        assert!(s.warnings()[0].contains("Global Catalog"));
    }
}
