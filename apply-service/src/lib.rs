//! rowferry-apply: consumes rowferry (or Debezium) change topics and applies them to a target
//! MySQL/MariaDB exactly once.
//!
//! - [`consumer`]: the consumer-group member; assigns partitions at the offsets stored in the
//!   target and feeds one [`worker`] per partition;
//! - [`worker`]: batches a partition's records, decodes them ([`decode`]), plans statements
//!   ([`planner`], [`sql_value`]) and writes them with the partition's next offset in one
//!   target transaction ([`target`]);
//! - [`dead_letter`]: where poison records go under the `dead-letter` policy.

pub mod config;
pub mod consumer;
pub mod control;
pub mod dead_letter;
pub mod decode;
pub mod metrics;
pub mod pipeline;
pub mod planner;
pub mod record;
pub mod seek;
pub mod sql_value;
pub mod status;
pub mod target;
mod trace;
pub mod worker;
pub mod writer;
