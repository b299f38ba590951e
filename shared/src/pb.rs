//! Code generated from `proto/` by `build.rs`, kept in one module so that generated names never
//! leak into hand-written modules by accident.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// `rowferry.event.v1`: the protobuf value format of change records.
pub mod event {
    pub mod v1 {
        tonic::include_proto!("rowferry.event.v1");
    }
}

/// `rowferry.control.v1`: what the control APIs share.
pub mod control {
    pub mod v1 {
        tonic::include_proto!("rowferry.control.v1");
    }
}

/// `rowferry.capture.v1`: the control API of rowferry-capture.
pub mod capture {
    pub mod v1 {
        tonic::include_proto!("rowferry.capture.v1");
    }
}

/// `rowferry.apply.v1`: the control API of rowferry-apply.
pub mod apply {
    pub mod v1 {
        tonic::include_proto!("rowferry.apply.v1");
    }
}

/// Encoded `FileDescriptorSet` of every rowferry proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rowferry_descriptor");
