//! The apply pipeline: check the target, then consume and apply until stopped.

use std::sync::Arc;
use std::time::Duration;

use rowferry_shared::lifecycle::RunControl;
use tokio_util::sync::CancellationToken;

use crate::config::{ApplyConfig, ConfigError, PoisonPolicy};
use crate::consumer::{self, ConsumeError};
use crate::dead_letter::DeadLetter;
use crate::status::{State, StatusSender};
use crate::target::offsets::OffsetsTable;
use crate::target::{TargetError, TargetOptions};
use crate::worker::Shared;

/// Why the apply stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The target refused something retrying cannot fix.
    #[error("target: {0}")]
    Target(#[from] TargetError),
    /// Kafka or a worker failed.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// The dead-letter producer could not be created.
    #[error("dead-letter producer: {0}")]
    DeadLetter(rdkafka::error::KafkaError),
    /// The consumer thread panicked or was cancelled.
    #[error("consumer thread: {0}")]
    Thread(String),
}

/// Runs the apply until `cancel` fires (then finishes the batches in flight) or it fails.
pub async fn run(
    config: ApplyConfig,
    status: StatusSender,
    cancel: CancellationToken,
) -> Result<(), ApplyError> {
    run_controlled(config, status, RunControl::unmanaged(cancel)).await
}

/// [`run`] under a controller: also pauses (batches in flight committed, partitions paused,
/// group membership kept) when asked.
pub async fn run_controlled(
    config: ApplyConfig,
    status: StatusSender,
    control: RunControl,
) -> Result<(), ApplyError> {
    status.send_modify(|s| {
        s.state = State::Starting;
        s.error = None;
    });
    let result = run_inner(config, &status, control).await;
    status.send_modify(|s| match &result {
        Ok(()) => s.state = State::Stopped,
        Err(error) => {
            s.state = State::Failed;
            s.error = Some(error.to_string());
        }
    });
    if let Err(error) = &result {
        tracing::error!(%error, "apply failed");
        crate::metrics::error("fatal");
    }
    result
}

async fn run_inner(
    config: ApplyConfig,
    status: &StatusSender,
    control: RunControl,
) -> Result<(), ApplyError> {
    let cancel = control.cancel_token().clone();
    let password = config.target_password()?;
    let target = TargetOptions::new(
        &config.target.url,
        password.as_ref(),
        config.target.foreign_key_checks,
    )?;
    let offsets = OffsetsTable::new(
        &config.target.offsets_database,
        &config.target.offsets_table,
        config.group_id(),
    );
    prepare_target(&target, &offsets, status, &cancel, &config).await?;
    if cancel.is_cancelled() {
        return Ok(());
    }
    let dead_letter = match config.apply.poison_policy {
        PoisonPolicy::DeadLetter => Some(
            DeadLetter::new(
                &config.kafka.bootstrap_servers,
                &config.kafka.properties,
                config.dead_letter_topic(),
                config.name.clone(),
            )
            .map_err(ApplyError::DeadLetter)?,
        ),
        PoisonPolicy::Fail => None,
    };
    let (reports_tx, reports_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        config,
        target,
        offsets,
        status: status.clone(),
        dead_letter,
        reports: reports_tx,
    });
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || consumer::run(shared, reports_rx, runtime, control))
        .await
        .map_err(|e| ApplyError::Thread(e.to_string()))??;
    Ok(())
}

/// Connects to the target and creates the offsets table, retrying while the target is
/// unreachable; refuses at once what retrying cannot fix (bad credentials, no privilege).
async fn prepare_target(
    target: &TargetOptions,
    offsets: &OffsetsTable,
    status: &StatusSender,
    cancel: &CancellationToken,
    config: &ApplyConfig,
) -> Result<(), ApplyError> {
    let mut delay = Duration::from_millis(config.target.retry_initial_ms.max(10));
    loop {
        let attempt = async {
            let mut conn = target.connect().await?;
            offsets.ensure(&mut conn).await?;
            let _ = conn.disconnect().await;
            Ok::<(), TargetError>(())
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, retry_in = ?delay, "target unreachable");
                crate::metrics::error("target");
                status.send_modify(|s| {
                    s.state = State::Retrying;
                    s.error = Some(error.to_string());
                });
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_millis(config.target.retry_max_ms.max(10)));
            }
            Err(error) => return Err(error.into()),
        }
    }
}
