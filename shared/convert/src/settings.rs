//! An integration's settings as the API carries them: read into a
//! [`SettingsInput`], its enums checked, and validated by core; written
//! back from [`IntegrationSettings`].

use dirsync_core::settings::{DirectoryKind, LdapSchemaFields, SettingsInput};
use dirsync_core::{DeltaMethod, DirectorySchema, EncryptionMode, FieldError, IntegrationSettings};
use dirsync_proto::api;

/// What the API received, read: every value an enum does not know is an
/// error naming its field.
pub fn input_of(s: &api::IntegrationSettings) -> (SettingsInput, Vec<FieldError>) {
    let mut errors = Vec::new();
    let directory = match api::DirectoryType::try_from(s.r#type) {
        Ok(api::DirectoryType::Unspecified) => None,
        Ok(api::DirectoryType::ActiveDirectory) => Some(DirectoryKind::ActiveDirectory),
        Ok(api::DirectoryType::Ldap) => Some(DirectoryKind::Ldap),
        Err(_) => {
            errors.push(FieldError::new(
                "settings.type",
                format!(
                    "{} is not a known directory type; use DIRECTORY_TYPE_ACTIVE_DIRECTORY or DIRECTORY_TYPE_LDAP",
                    s.r#type
                ),
            ));
            None
        }
    };
    let encryption_mode = match api::EncryptionMode::try_from(s.encryption_mode) {
        Ok(api::EncryptionMode::Unspecified) => None,
        Ok(api::EncryptionMode::Strict) => Some(EncryptionMode::Strict),
        Ok(api::EncryptionMode::Relaxed) => Some(EncryptionMode::Relaxed),
        Err(_) => {
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
    let delta_method = match api::DeltaMethod::try_from(s.delta_method) {
        Ok(api::DeltaMethod::Unspecified) => None,
        Ok(api::DeltaMethod::Dirsync) => Some(DeltaMethod::DirSync),
        Ok(api::DeltaMethod::UsnChanged) => Some(DeltaMethod::UsnChanged),
        Err(_) => {
            errors.push(FieldError::new(
                "settings.delta_method",
                format!(
                    "{} is not a known delta method; use DELTA_METHOD_DIRSYNC or DELTA_METHOD_USN_CHANGED",
                    s.delta_method
                ),
            ));
            None
        }
    };
    let input = SettingsInput {
        name: s.name.clone(),
        description: s.description.clone(),
        directory,
        ldap_schema: s.ldap_schema.as_ref().map(|m| LdapSchemaFields {
            user_class: m.user_class.clone(),
            group_class: m.group_class.clone(),
            contact_class: m.contact_class.clone(),
            disabled_attribute: m.disabled_attribute.clone(),
            disabled_values: m.disabled_values.clone(),
            attributes: m.attributes.clone().into_iter().collect(),
        }),
        host: s.host.clone(),
        alternate_host: s.alternate_host.clone(),
        encrypt: s.encrypt,
        encryption_mode,
        port: s.port,
        user_dn: s.user_dn.clone(),
        root_dn: s.root_dn.clone(),
        acknowledge_disabled_accounts: s.acknowledge_disabled_accounts,
        filter_email_domains: s.filter_email_domains.clone(),
        include_contacts: s.include_contacts,
        maximum_sync_deletions: s.maximum_sync_deletions,
        delete_users: s.delete_users,
        enabled: s.enabled,
        partition: s.partition.clone(),
        schedule: s.schedule.clone(),
        delta_interval_minutes: s.delta_interval_minutes,
        delta_method,
        allow_insecure_bind: s.allow_insecure_bind,
    };
    (input, errors)
}

/// Validates what the API received. Returns every problem found, not only
/// the first, so an admin can fix a form in one go.
pub fn settings_from_api(
    s: &api::IntegrationSettings,
) -> Result<IntegrationSettings, Vec<FieldError>> {
    let (input, mut errors) = input_of(s);
    match IntegrationSettings::validate(&input) {
        Ok(settings) if errors.is_empty() => Ok(settings),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// The API form of valid settings.
pub fn settings_to_api(s: &IntegrationSettings) -> api::IntegrationSettings {
    api::IntegrationSettings {
        name: s.name.clone(),
        description: s.description.clone(),
        r#type: match s.directory {
            DirectorySchema::ActiveDirectory => api::DirectoryType::ActiveDirectory,
            DirectorySchema::Ldap(_) => api::DirectoryType::Ldap,
        } as i32,
        ldap_schema: match &s.directory {
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
        host: s.host.clone(),
        alternate_host: s.alternate_host.clone().unwrap_or_default(),
        encrypt: Some(s.encryption.is_some()),
        encryption_mode: match s.encryption {
            None => api::EncryptionMode::Unspecified,
            Some(EncryptionMode::Strict) => api::EncryptionMode::Strict,
            Some(EncryptionMode::Relaxed) => api::EncryptionMode::Relaxed,
        } as i32,
        port: u32::from(s.port),
        user_dn: s.user_dn.to_string(),
        root_dn: s.root_dn.to_string(),
        acknowledge_disabled_accounts: s.acknowledge_disabled_accounts,
        filter_email_domains: s.filter_email_domains.join(","),
        include_contacts: s.include_contacts,
        maximum_sync_deletions: i64::try_from(s.maximum_sync_deletions).unwrap_or(i64::MAX),
        delete_users: s.delete_users,
        enabled: Some(s.enabled),
        partition: s.partition.clone().unwrap_or_default(),
        schedule: s.schedule.clone().unwrap_or_default(),
        delta_interval_minutes: Some(s.delta_interval_minutes),
        delta_method: match s.delta_method {
            DeltaMethod::DirSync => api::DeltaMethod::Unspecified,
            DeltaMethod::UsnChanged => api::DeltaMethod::UsnChanged,
        } as i32,
        allow_insecure_bind: s.allow_insecure_bind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dirsync_core::settings::split_host_port;

    #[test]
    fn binds_without_encryption_must_be_allowed() {
        let plain = api::IntegrationSettings {
            encrypt: Some(false),
            encryption_mode: 0,
            port: 389,
            ..valid()
        };
        let e = settings_from_api(&plain).expect_err("refused");
        assert_eq!(e[0].field, "settings.encrypt");
        assert!(e[0].message.contains("allow_insecure_bind"));
        let allowed = settings_from_api(&api::IntegrationSettings {
            allow_insecure_bind: true,
            ..plain
        })
        .expect("allowed");
        assert!(allowed.allow_insecure_bind);
        assert!(allowed.warnings().iter().any(|w| w.contains("in clear")));
        // Meaningless with encryption on: not kept.
        let tls = settings_from_api(&api::IntegrationSettings {
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
            settings_from_api(&api::IntegrationSettings {
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
        let e = settings_from_api(&api::IntegrationSettings {
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
        settings_from_api(&s)
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn valid_settings_round_trip() {
        let s = settings_from_api(&valid()).expect("valid");
        assert_eq!(s.port, 636);
        assert_eq!(s.encryption, Some(EncryptionMode::Relaxed));
        assert_eq!(s.filter_email_domains, ["example.com", "example.org"]);
        assert_eq!(s.partition(), "corp.example.com");
        assert!(s.domain_in_scope("EXAMPLE.org"));
        assert!(!s.domain_in_scope("example.net"));
        let back = settings_from_api(&settings_to_api(&s)).expect("valid");
        assert_eq!(back, s);
    }

    #[test]
    fn the_delta_method_is_checked_and_kept_out_of_stored_json_by_default() {
        let polled = settings_from_api(&api::IntegrationSettings {
            delta_method: api::DeltaMethod::UsnChanged as i32,
            ..valid()
        })
        .expect("valid");
        assert_eq!(polled.delta_method, DeltaMethod::UsnChanged);
        assert_eq!(
            settings_from_api(&settings_to_api(&polled)).expect("valid"),
            polled
        );
        // Changing it changes how deltas read: cursors do not carry over.
        let dirsync = settings_from_api(&valid()).expect("valid");
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
        let s = settings_from_api(&api::IntegrationSettings {
            port: 3269,
            ..valid()
        })
        .expect("valid");
        assert!(s.warnings()[0].contains("Global Catalog"));
    }
}
