//! rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed
//! row, exactly once.

pub mod binlog;
pub mod config;
pub mod control;
pub mod filter;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod seek;
pub mod snapshot;
pub mod source;
pub mod status;
mod trace;
