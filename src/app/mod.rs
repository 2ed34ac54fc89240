//! Use cases: one function per thing a user asks for, shared by the CLI and the daemon. Each
//! takes the validated settings, the store and `now`, does the work through the layers below
//! (sources, revocation, policy, notify, renewal) and returns a typed report.
//!
//! - [`scan`]: every source once, through the bounded pipeline (listing, bounded concurrent
//!   fetches, one writer), into the inventory;
//! - [`evaluate`]: the policy over the inventory in batches, the alert state machine, the
//!   outbox; `plan` is its dry run;
//! - [`queries`]: what `list`, `show`, `ack`, `silence` and the API ask of the inventory;
//! - [`owners`]: who owns each certificate (its sources' annotations, metadata and tags, else
//!   `owners.rules`);
//! - [`status`]: the status page's overview (counts, expiry timeline) and inventory pages;
//! - [`jobs`]: the scheduled job kinds (scan, revocation, renew, evaluate, digest) as the daemon
//!   runs them.

pub mod ari;
pub mod evaluate;
pub mod jobs;
pub mod owners;
pub mod public_trust;
pub mod queries;
pub mod scan;
pub mod status;
pub mod trust;
