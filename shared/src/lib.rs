//! rowferry-shared: what both services agree on.
//!
//! Today it holds the event model, binlog positions, the record codecs (Debezium JSON and
//! protobuf) and the code generated from `proto/`; configuration loading, telemetry and the
//! pipeline lifecycle join it as the services are built.

pub mod codec;
pub mod config;
pub mod control;
pub mod event;
pub mod lifecycle;
pub mod pb;
pub mod position;
pub mod signal;
