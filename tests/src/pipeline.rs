//! A service pipeline (capture or apply) running as a task of the test: its status channel,
//! waiting for a status, graceful stop, crash, and its result.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// What a pipeline status must tell a test.
pub trait Status: Clone + Debug + Send + Sync + 'static {
    /// Whether the pipeline is FAILED.
    fn failed(&self) -> bool;
}

impl Status for rowferry_capture::status::CaptureStatus {
    fn failed(&self) -> bool {
        self.state == rowferry_capture::status::State::Failed
    }
}

impl Status for rowferry_apply::status::ApplyStatus {
    fn failed(&self) -> bool {
        self.state == rowferry_apply::status::State::Failed
    }
}

/// A pipeline running in this process.
pub struct InProcess<S, E> {
    /// Cancels the pipeline (graceful stop).
    pub cancel: CancellationToken,
    /// Status updates.
    pub status: watch::Receiver<S>,
    handle: JoinHandle<Result<(), E>>,
    service: &'static str,
    // A test that fails early drops the pipeline: stop it, or the runtime would wait for it.
    _stop_on_drop: DropGuard,
}

impl<S: Status, E: Display + Send + 'static> InProcess<S, E> {
    /// Spawns `run(status sender, cancel)`; logs go to the test's output (shown for failing
    /// tests), RUST_LOG sets the level.
    pub fn spawn<F>(
        service: &'static str,
        channel: (watch::Sender<S>, watch::Receiver<S>),
        run: impl FnOnce(watch::Sender<S>, CancellationToken) -> F,
    ) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_test_writer()
            .try_init();
        let cancel = CancellationToken::new();
        let (tx, rx) = channel;
        let handle = tokio::spawn(run(tx, cancel.clone()));
        Self {
            _stop_on_drop: cancel.clone().drop_guard(),
            cancel,
            status: rx,
            handle,
            service,
        }
    }

    /// Waits until `done` holds for the status (checked at every change and every 200 ms),
    /// failing with `what` and the last status after `timeout`. A FAILED pipeline ends the wait
    /// unless `done` accepts it.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&S) -> bool,
    ) -> Result<S> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status.borrow().clone();
            if done(&status) {
                return Ok(status);
            }
            if status.failed() {
                bail!(
                    "{} failed while waiting for {what}: {status:?}",
                    self.service
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} did not reach {what} within {timeout:?}: {status:?}",
                    self.service
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), self.status.changed()).await;
        }
    }

    /// Stops gracefully and returns the pipeline's result.
    pub async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        match tokio::time::timeout(Duration::from_secs(60), self.handle).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => bail!("{} ended with an error: {e}", self.service),
            Ok(Err(e)) => bail!("{} task panicked: {e}", self.service),
            Err(_) => bail!("{} did not stop within 60 s", self.service),
        }
    }

    /// Ends the pipeline abruptly, as a crash would: no graceful stop.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }

    /// Waits for the pipeline to end by itself (after a fatal error).
    pub async fn join(self, timeout: Duration) -> Result<Result<(), E>> {
        let service = self.service;
        Ok(tokio::time::timeout(timeout, self.handle)
            .await
            .with_context(|| format!("{service} still running"))??)
    }
}
