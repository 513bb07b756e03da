//! The reconciler: stages a run's batches idempotently and, once the
//! collection is complete (staged totals equal the `CollectionEnd`'s),
//! plans against the store and applies the plan in one transaction.
//!
//! A run goes through the modules in this order:
//!
//! - [`consume`]: collector events off the bus, each acknowledged once
//!   handled or delivered again after a pause.
//! - [`stage`]: each batch stored as the bytes it arrived as (a batch
//!   delivered twice is stored once), then offered to the run's assembly.
//! - [`assemble`]: the run's batches in sequence order — from memory as
//!   they arrive, from staging for what did not come that way (another
//!   reconciler's, a restart) — read into one planner: the first pass.
//! - [`apply`]: at the collection's end, the second pass over the staged
//!   batches writes what changes in one transaction; [`delta`] plans and
//!   applies a delta run's few entries whole.
//! - [`metrics`]: what a settled run counts.

mod apply;
mod assemble;
mod consume;
mod delta;
mod metrics;
mod stage;

pub use consume::Reconciler;
