//! The `dirsync` binary's library: service wiring for both shapes
//! (distributed roles, or everything in one process with SQLite and the
//! in-process bus), the CLI, and the demo.

pub mod cli;
pub mod demo;
pub mod serve;
