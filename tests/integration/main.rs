//! dirsync's integration tests: one binary, against the real Samba AD DC,
//! NATS JetStream and PostgreSQL (see `tests/run.sh`).

#![allow(clippy::unwrap_used)]
// Tests wait on real services, in real time.
#![allow(clippy::disallowed_methods)]

mod api;
mod auth;
mod backup;
mod cli;
mod collector;
mod console;
mod delta;
mod faults;
mod health;
mod hostile;
mod keys;
mod ldap;
mod reconciler;
mod returning;
mod scheduler;
mod store;
mod sync;
mod test_connection;
mod tracing;
