//! The gRPC control endpoint: `rowferry.capture.v1.CaptureControl` (GetStatus for now), the
//! standard health service and server reflection.

use std::net::SocketAddr;

use rowferry_shared::pb::capture::v1 as pb;
use rowferry_shared::pb::capture::v1::capture_control_server::{
    CaptureControl, CaptureControlServer,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::status::{CaptureStatus, State, StatusReceiver};

/// Serves the control API from the pipeline's status channel.
pub struct Control {
    name: String,
    status: StatusReceiver,
}

impl Control {
    /// A control service for the capture called `name`.
    pub fn new(name: String, status: StatusReceiver) -> Self {
        Self { name, status }
    }
}

fn state(state: State) -> pb::State {
    match state {
        State::Stopped => pb::State::Stopped,
        State::Starting => pb::State::Starting,
        State::Running => pb::State::Running,
        State::Retrying => pb::State::Retrying,
        State::Stopping => pb::State::Stopping,
        State::Failed => pb::State::Failed,
    }
}

/// The status as the API reports it.
pub fn to_proto(name: &str, status: &CaptureStatus) -> pb::CaptureStatus {
    pb::CaptureStatus {
        name: name.to_owned(),
        state: state(status.state) as i32,
        error: status.error.clone().unwrap_or_default(),
        flavor: status.flavor.clone().unwrap_or_default(),
        server_version: status.server_version.clone().unwrap_or_default(),
        metadata_source: status.metadata_source.clone().unwrap_or_default(),
        committed: status.committed.as_ref().map(|p| pb::Position {
            file: p.file.clone(),
            pos: p.pos,
            gtid_set: p.gtids.clone().unwrap_or_default(),
            partial: p.partial.as_ref().map(|t| pb::PartialTransaction {
                gtid: t.gtid.clone().unwrap_or_default(),
                file: t.file.clone(),
                pos: t.pos,
                rows_done: t.rows_done,
            }),
            source_ts_ms: p.source_ts_ms,
        }),
        lag_seconds: status.lag_seconds,
        records_committed: status.records_committed,
        kafka_transactions: status.kafka_transactions,
        source_transactions: status.source_transactions,
    }
}

#[tonic::async_trait]
impl CaptureControl for Control {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let status = self.status.borrow().clone();
        Ok(Response::new(pb::GetStatusResponse {
            status: Some(to_proto(&self.name, &status)),
        }))
    }
}

/// Why the control endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The listen address does not parse.
    #[error("invalid control.grpc_listen {0:?}: expected host:port, e.g. 127.0.0.1:50051")]
    Address(String),
    /// Binding or serving failed.
    #[error("gRPC control endpoint on {address}: {detail}")]
    Serve { address: String, detail: String },
}

/// Binds the control endpoint (done before the pipeline starts, so a taken port is an error
/// at startup, not a silent absence).
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener, ControlError> {
    let address: SocketAddr = listen
        .parse()
        .map_err(|_| ControlError::Address(listen.to_owned()))?;
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| ControlError::Serve {
            address: listen.to_owned(),
            detail: format!("{e}; choose another port with control.grpc_listen"),
        })
}

/// Serves the control API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Control,
    shutdown: CancellationToken,
) -> Result<(), ControlError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let serve_error = |e: &dyn std::fmt::Display| ControlError::Serve {
        address: address.clone(),
        detail: e.to_string(),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CaptureControlServer<Control>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(rowferry_shared::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| serve_error(&e))?;
    tracing::info!(%address, "gRPC control endpoint listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(CaptureControlServer::new(control))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| serve_error(&e))
}
