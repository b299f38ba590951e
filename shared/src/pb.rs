//! Code generated from `proto/` by `build.rs`, kept in one module so that generated names never
//! leak into hand-written modules by accident.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `rowferry.event.v1`: the protobuf value format of change records.
pub mod event {
    pub mod v1 {
        tonic::include_proto!("rowferry.event.v1");
        include!(concat!(env!("OUT_DIR"), "/rowferry.event.v1.serde.rs"));
    }
}

/// `rowferry.control.v1`: what the control APIs share.
pub mod control {
    pub mod v1 {
        tonic::include_proto!("rowferry.control.v1");
        include!(concat!(env!("OUT_DIR"), "/rowferry.control.v1.serde.rs"));
    }
}

/// `rowferry.capture.v1`: the control API of rowferry-capture.
pub mod capture {
    pub mod v1 {
        tonic::include_proto!("rowferry.capture.v1");
        include!(concat!(env!("OUT_DIR"), "/rowferry.capture.v1.serde.rs"));
    }
}

/// `rowferry.apply.v1`: the control API of rowferry-apply.
pub mod apply {
    pub mod v1 {
        tonic::include_proto!("rowferry.apply.v1");
        include!(concat!(env!("OUT_DIR"), "/rowferry.apply.v1.serde.rs"));
    }
}

/// The protobuf well-known types the messages use (`Timestamp`, `Duration`), with serde.
pub use pbjson_types as wkt;

/// Encoded `FileDescriptorSet` of every rowferry proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rowferry_descriptor");
