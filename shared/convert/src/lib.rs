//! The edge between the wire (dirsync-proto: the gRPC API, the bus) and
//! the domain (dirsync-core, which knows no protobuf): each message read
//! into domain types, its enums checked, and domain values written back.
//! Services convert here, where a message enters or leaves; no `i32` enum
//! of the wire crosses into the policy code.

pub mod digest;
pub mod entry;
pub mod schema;
pub mod secret;
pub mod settings;

pub use digest::EntryDigest;
pub use entry::{entry_of, object_of};
pub use schema::{directory_from_bus, directory_to_bus};
pub use secret::{sealed_from_bus, sealed_to_bus};
pub use settings::{settings_from_api, settings_to_api};
