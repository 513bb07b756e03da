//! Generated protobuf types: the gRPC API (`api`) and the bus messages
//! (`bus`), and the LZ4 blocks object batches travel in (`lz4`).
//!
//! These are wire formats. Services convert them to the domain types of
//! `dirsync-core` where they enter.

#![allow(clippy::all, clippy::unwrap_used, missing_docs)]

pub mod api {
    tonic::include_proto!("dirsync.v1");
}

pub mod bus {
    tonic::include_proto!("dirsync.bus.v1");
}

pub mod lz4;

/// Encoded `FileDescriptorSet` of every dirsync proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");

pub use prost::Message;
