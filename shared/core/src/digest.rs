//! Entry digests: how a resync recognises, without decoding it, a collected
//! entry that is byte for byte the one its stored record was derived from.
//!
//! A record is a function of its entry, of the integration's settings, and
//! of how the entry's member and manager DNs resolve among the objects in
//! scope. The store keeps each object's entry digest, and per integration
//! the context its last applied run planned under (see
//! [`crate::plan::Planner::end_index`]); an entry whose digest and context
//! both match has the record the store holds. The digest of an entry is
//! taken over its encoding on the bus, at the edge (dirsync-convert's
//! `EntryDigest`); the plan only compares them.

use sha2::{Digest, Sha256};

use crate::object::ShortHash;

/// The first 128 bits of a SHA-256.
pub fn short(hasher: Sha256) -> ShortHash {
    let mut out = [0; 16];
    out.copy_from_slice(&hasher.finalize()[..16]);
    ShortHash(out)
}
