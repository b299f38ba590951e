//! rowferry-shared: what both services agree on.
//!
//! Today it holds the event model, binlog positions, the record codecs (Debezium JSON and
//! protobuf), the code generated from `proto/`, configuration loading, telemetry (logs,
//! traces, metrics) and the pipeline lifecycle with its gRPC control plane.

pub mod codec;
pub mod config;
pub mod control;
pub mod event;
pub mod lifecycle;
pub mod pb;
pub mod position;
pub mod service;
pub mod signal;
pub mod telemetry;
