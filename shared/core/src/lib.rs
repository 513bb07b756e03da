//! Domain types and pure logic of dirsync: identifiers, integration settings
//! and their validation, sealed secrets, directory objects and the sync plan.
//!
//! Nothing here does I/O or reads the clock; time arrives as a [`Clock`].

pub mod change;
pub mod clock;
pub mod delta;
pub mod digest;
pub mod dn;
pub mod email;
pub mod field;
pub mod guid;
pub mod object;
pub mod plan;
#[cfg(test)]
mod plan_properties;
pub mod returning;
pub mod run;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod settings;
pub mod token;

pub use clock::{Clock, FixedClock, SystemClock, UnixMillis};
pub use dn::Dn;
pub use email::EmailAddress;
pub use field::FieldError;
pub use guid::ObjectGuid;
pub use object::{
    Attributes, ContentHash, DirectoryObject, Entry, EntryError, GroupScope, GroupType, ObjectKind,
    ObjectRecord, ShortHash,
};
pub use run::{RunCounts, RunKind, RunState, Trigger};
pub use schema::{DirectorySchema, LdapSchema};
pub use secret::{Keyring, MasterKey, SealedSecret, SecretError};
pub use settings::{
    DeltaMethod, DirectoryKind, EncryptionMode, IntegrationSettings, LdapSchemaFields,
    SettingsInput,
};
