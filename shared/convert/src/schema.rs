//! A directory's type and mapping on the bus (a collector's job).

use dirsync_core::LdapSchema;
use dirsync_core::schema::{DirectorySchema, LdapSchemaInput};
use dirsync_proto::bus;

/// The bus form of a directory, for a collector's job.
pub fn directory_to_bus(d: &DirectorySchema) -> (bus::DirectoryType, Option<bus::LdapSchema>) {
    match d {
        DirectorySchema::ActiveDirectory => (bus::DirectoryType::ActiveDirectory, None),
        DirectorySchema::Ldap(m) => (
            bus::DirectoryType::Ldap,
            Some(bus::LdapSchema {
                user_class: m.user_class.clone(),
                group_class: m.group_class.clone(),
                contact_class: m.contact_class.clone().unwrap_or_default(),
                disabled_attribute: m.disabled_attribute.clone().unwrap_or_default(),
                disabled_values: m.disabled_values.clone(),
                attributes: m.attributes.clone().into_iter().collect(),
            }),
        ),
    }
}

/// Reads a job's directory type and mapping, checked as the API checks
/// them.
pub fn directory_from_bus(
    directory_type: i32,
    schema: Option<&bus::LdapSchema>,
) -> Result<DirectorySchema, String> {
    match bus::DirectoryType::try_from(directory_type) {
        Ok(bus::DirectoryType::Unspecified | bus::DirectoryType::ActiveDirectory) => {
            Ok(DirectorySchema::ActiveDirectory)
        }
        Ok(bus::DirectoryType::Ldap) => {
            let m = schema.cloned().unwrap_or_default();
            LdapSchema::parse(&LdapSchemaInput {
                user_class: &m.user_class,
                group_class: &m.group_class,
                contact_class: &m.contact_class,
                disabled_attribute: Some(&m.disabled_attribute),
                disabled_values: &m.disabled_values,
                attributes: m
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            })
            .map(DirectorySchema::Ldap)
            .map_err(|errors| {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!("the job's LDAP schema is invalid: {}", text.join("; "))
            })
        }
        Err(_) => Err(format!("unknown directory type {directory_type}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_round_trip() {
        let values = vec!["TRUE".to_owned()];
        let ldap = DirectorySchema::Ldap(
            LdapSchema::parse(&LdapSchemaInput {
                disabled_attribute: Some("nsAccountLock"),
                disabled_values: &values,
                attributes: vec![("aliases", "proxyAddresses")],
                ..Default::default()
            })
            .expect("valid"),
        );
        for d in [DirectorySchema::ActiveDirectory, ldap] {
            let (t, m) = directory_to_bus(&d);
            assert_eq!(directory_from_bus(t as i32, m.as_ref()), Ok(d));
        }
        assert!(directory_from_bus(9, None).is_err());
    }
}
