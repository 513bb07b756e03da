//! `dirsync integration`: create, update, list, show, delete and test
//! integrations; the settings file they read.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use dirsync_proto::api;

use super::print::{print_integration, print_step};
use super::{Client, Exit, read_secret};

#[derive(Debug, clap::Subcommand)]
pub enum IntegrationCmd {
    /// Create an integration from a TOML file (see deploy/local/integration.example.toml).
    Create {
        /// TOML file with the settings.
        #[arg(long)]
        file: PathBuf,
        /// File holding the bind password ('-': standard input). Overrides
        /// `password_file` in the TOML file.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Replace an integration's settings from a TOML file; the stored
    /// password is kept unless a new one is given.
    Update {
        integration: String,
        #[arg(long)]
        file: PathBuf,
        /// A new bind password ('-': standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List the account's integrations.
    List,
    /// Show one integration.
    Get { integration: String },
    /// Delete an integration (its objects stay, unmanaged).
    Delete { integration: String },
    /// Test Connection: hostname, connectivity, certificate,
    /// authentication and sample addresses, with hints.
    Test {
        /// A saved integration (id or name).
        integration: Option<String>,
        /// Test settings not saved yet, from a TOML file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The bind password for --file ('-': standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// The settings file of `integration create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub host: String,
    #[serde(default)]
    pub alternate_host: String,
    #[serde(default)]
    pub port: u32,
    pub encrypt: Option<bool>,
    /// "strict" or "relaxed".
    pub encryption_mode: Option<String>,
    pub user_dn: String,
    pub root_dn: String,
    /// File holding the bind password.
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub acknowledge_disabled_accounts: bool,
    #[serde(default)]
    pub filter_email_domains: String,
    #[serde(default)]
    pub include_contacts: bool,
    #[serde(default)]
    pub maximum_sync_deletions: i64,
    #[serde(default)]
    pub delete_users: bool,
    pub enabled: Option<bool>,
    /// Collectors of this partition take the jobs; empty: the Root DN's domain.
    #[serde(default)]
    pub partition: String,
    /// Own times of day, e.g. "06:00,18:00"; empty: the account's.
    #[serde(default)]
    pub schedule: String,
    /// Minutes between delta syncs; absent: 5; 0: none.
    pub delta_interval_minutes: Option<u32>,
    /// Active Directory: "dirsync" (the default; uSNChanged polling where
    /// the DC refuses DirSync) or "usn_changed".
    pub delta_method: Option<String>,
    /// With encrypt = false: accept that binds send passwords in clear.
    #[serde(default)]
    pub allow_insecure_bind: bool,
    /// "active_directory" (the default) or "ldap" (OpenLDAP and the like).
    #[serde(default, rename = "type")]
    pub directory_type: Option<String>,
    /// The mapping of a "ldap" directory; absent: the defaults.
    pub ldap_schema: Option<LdapSchemaFile>,
}

/// `[ldap_schema]` of a settings file; see `LdapSchema` in the API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSchemaFile {
    #[serde(default)]
    pub user_class: String,
    #[serde(default)]
    pub group_class: String,
    #[serde(default)]
    pub contact_class: String,
    pub disabled_attribute: Option<String>,
    #[serde(default)]
    pub disabled_values: Vec<String>,
    /// Property → attribute, e.g. `aliases = "proxyAddresses"`.
    #[serde(default)]
    pub attributes: std::collections::HashMap<String, String>,
}

impl IntegrationFile {
    /// Reads and checks a settings file; unknown keys are refused.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn to_api(&self) -> anyhow::Result<api::IntegrationSettings> {
        let mode = match self.encryption_mode.as_deref() {
            None => api::EncryptionMode::Unspecified,
            Some("strict") => api::EncryptionMode::Strict,
            Some("relaxed") => api::EncryptionMode::Relaxed,
            Some(other) => bail!("encryption_mode: {other:?} is not strict or relaxed"),
        };
        let delta_method = match self.delta_method.as_deref() {
            None => api::DeltaMethod::Unspecified,
            Some("dirsync") => api::DeltaMethod::Dirsync,
            Some("usn_changed") => api::DeltaMethod::UsnChanged,
            Some(other) => bail!("delta_method: {other:?} is not dirsync or usn_changed"),
        };
        let directory_type = match self.directory_type.as_deref() {
            None | Some("active_directory") => api::DirectoryType::ActiveDirectory,
            Some("ldap") => api::DirectoryType::Ldap,
            Some(other) => bail!("type: {other:?} is not active_directory or ldap"),
        };
        Ok(api::IntegrationSettings {
            name: self.name.clone(),
            description: self.description.clone(),
            r#type: directory_type as i32,
            ldap_schema: self.ldap_schema.as_ref().map(|m| api::LdapSchema {
                user_class: m.user_class.clone(),
                group_class: m.group_class.clone(),
                contact_class: m.contact_class.clone(),
                disabled_attribute: m.disabled_attribute.clone(),
                disabled_values: m.disabled_values.clone(),
                attributes: m.attributes.clone(),
            }),
            host: self.host.clone(),
            alternate_host: self.alternate_host.clone(),
            encrypt: self.encrypt,
            encryption_mode: mode as i32,
            port: self.port,
            user_dn: self.user_dn.clone(),
            root_dn: self.root_dn.clone(),
            acknowledge_disabled_accounts: self.acknowledge_disabled_accounts,
            filter_email_domains: self.filter_email_domains.clone(),
            include_contacts: self.include_contacts,
            maximum_sync_deletions: self.maximum_sync_deletions,
            delete_users: self.delete_users,
            enabled: self.enabled,
            partition: self.partition.clone(),
            schedule: self.schedule.clone(),
            delta_interval_minutes: self.delta_interval_minutes,
            delta_method: delta_method as i32,
            allow_insecure_bind: self.allow_insecure_bind,
        })
    }
}

pub async fn run(client: &mut Client, cmd: IntegrationCmd) -> anyhow::Result<Exit> {
    let account = client.account.clone();
    match cmd {
        IntegrationCmd::Create {
            file,
            password_file,
        } => {
            let spec = IntegrationFile::load(&file)?;
            let pw_path = password_file
                .or(spec.password_file.clone())
                .context("give the bind password with --password-file FILE or password_file in the TOML file")?;
            let created = client
                .integrations
                .create_integration(api::CreateIntegrationRequest {
                    account_id: account,
                    settings: Some(spec.to_api()?),
                    password: read_secret(&pw_path)?,
                    ..Default::default()
                })
                .await?
                .into_inner();
            print_integration(&created);
        }
        IntegrationCmd::Test {
            integration,
            file,
            password_file,
        } => {
            let (settings, password) = match &file {
                Some(file) => {
                    let spec = IntegrationFile::load(file)?;
                    let pw = password_file
                        .clone()
                        .or(spec.password_file.clone())
                        .map(|p| read_secret(&p))
                        .transpose()?;
                    (Some(spec.to_api()?), pw)
                }
                None => (None, password_file.map(|p| read_secret(&p)).transpose()?),
            };
            let mut steps = client
                .integrations
                .test_connection(api::TestConnectionRequest {
                    account_id: account,
                    integration: integration.unwrap_or_default(),
                    settings,
                    password,
                })
                .await?
                .into_inner();
            let mut failed = false;
            while let Some(step) = steps.message().await? {
                failed |= print_step(&step);
            }
            if failed {
                return Ok(Exit::FAILURE);
            }
        }
        IntegrationCmd::Update {
            integration,
            file,
            password_file,
        } => {
            let spec = IntegrationFile::load(&file)?;
            let password = password_file
                .or(spec.password_file.clone())
                .map(|p| read_secret(&p))
                .transpose()?;
            let updated = client
                .integrations
                .update_integration(api::UpdateIntegrationRequest {
                    account_id: account,
                    integration,
                    settings: Some(spec.to_api()?),
                    password,
                    ..Default::default()
                })
                .await?
                .into_inner();
            print_integration(&updated);
        }
        IntegrationCmd::List => {
            let list = client
                .integrations
                .list_integrations(api::ListIntegrationsRequest {
                    account_id: account,
                })
                .await?
                .into_inner();
            for i in &list.integrations {
                print_integration(i);
            }
        }
        IntegrationCmd::Get { integration } => {
            let i = client
                .integrations
                .get_integration(api::GetIntegrationRequest {
                    account_id: account,
                    integration,
                })
                .await?
                .into_inner();
            print_integration(&i);
        }
        IntegrationCmd::Delete { integration } => {
            client
                .integrations
                .delete_integration(api::DeleteIntegrationRequest {
                    account_id: account,
                    integration: integration.clone(),
                })
                .await?;
            println!("deleted {integration}");
        }
    }
    Ok(Exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dirsync_core::DirectorySchema;

    #[test]
    fn the_example_settings_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/local/integration.example.toml");
        let file = IntegrationFile::load(&path).expect("the example parses");
        let s =
            dirsync_convert::settings_from_api(&file.to_api().expect("converts")).expect("valid");
        assert_eq!(s.directory, DirectorySchema::ActiveDirectory);
    }

    #[test]
    fn an_ldap_settings_file_maps_attributes() {
        let text = r#"
            name = "OpenLDAP"
            type = "ldap"
            host = "ldap.example.com"
            user_dn = "cn=dirsync,dc=example,dc=com"
            root_dn = "ou=people,dc=example,dc=com"
            [ldap_schema]
            disabled_attribute = "nsAccountLock"
            disabled_values = ["TRUE"]
            [ldap_schema.attributes]
            aliases = "proxyAddresses"
        "#;
        let file: IntegrationFile = toml::from_str(text).expect("parses");
        let s =
            dirsync_convert::settings_from_api(&file.to_api().expect("converts")).expect("valid");
        let DirectorySchema::Ldap(m) = s.directory else {
            panic!("an LDAP directory");
        };
        assert_eq!(m.attribute("aliases"), Some("proxyAddresses"));
        assert_eq!(m.attribute("mail"), Some("mail"), "defaults fill the rest");
        assert_eq!(m.disabled_values, ["TRUE"]);

        let bad: IntegrationFile =
            toml::from_str(&text.replace("type = \"ldap\"", "type = \"novell\"")).expect("parses");
        assert!(
            bad.to_api()
                .expect_err("unknown type")
                .to_string()
                .contains("novell")
        );
    }
}
