//! rowferry-shared: what both services agree on.
//!
//! Today it holds the code generated from `proto/`; the event model, positions, configuration
//! loading, telemetry and the pipeline lifecycle join it as the services are built.

pub mod event;
pub mod pb;
pub mod position;
