//! The lifecycle both services share: one pipeline run at a time, started, stopped, paused and
//! resumed on request, with every request checked against the current state.
//!
//! A [`Controller`] owns the run of a [`Pipeline`]. Requests are serialised (one at a time, in
//! arrival order); a request the state does not allow is refused with a [`Refused`] that
//! names the state and what to do instead. The public [`State`] combines what the controller
//! knows (stopped, stopping, failed, paused) with the phase the pipeline reports while it runs
//! (starting, snapshotting, running, retrying).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The states of a pipeline, as the control API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not running.
    Stopped,
    /// Connecting and checking before streaming.
    Starting,
    /// Copying existing rows before streaming.
    Snapshotting,
    /// Streaming.
    Running,
    /// Running, but taking no new work; nothing is in flight.
    Paused,
    /// Running, waiting to retry after a transient error.
    Retrying,
    /// Finishing the work in flight before stopping.
    Stopping,
    /// Stopped by an error that retrying cannot fix; the error is kept.
    Failed,
}

impl State {
    /// The name the API and the logs use (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Snapshotting => "SNAPSHOTTING",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Retrying => "RETRYING",
            State::Stopping => "STOPPING",
            State::Failed => "FAILED",
        }
    }

    /// Whether a run is in progress (anything but STOPPED and FAILED).
    pub fn is_active(self) -> bool {
        !matches!(self, State::Stopped | State::Failed)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action}: the {service} is {state}; {hint}")]
pub struct Refused {
    /// What was asked (`pause`).
    pub action: &'static str,
    /// Which service (`capture`).
    pub service: &'static str,
    /// The state it was in.
    pub state: State,
    /// What to do instead.
    pub hint: String,
}

/// Why a request that was allowed did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The state does not allow the request.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The pipeline did not confirm in time (a pause waits for the work in flight).
    #[error("{action} did not complete within {after:?}: {detail}")]
    Timeout {
        /// What was asked.
        action: &'static str,
        /// How long it waited.
        after: Duration,
        /// What was still going on.
        detail: String,
    },
}

/// A pipeline run's future.
pub type RunFuture<E> = Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'static>>;

/// What a controller runs: one call of [`Pipeline::run`] is one run, from STARTING until it is
/// stopped or fails.
pub trait Pipeline: Send + Sync + 'static {
    /// Why a run failed.
    type Error: std::fmt::Display + Send + 'static;

    /// Runs until `control` is cancelled (then finishes the work in flight and returns
    /// `Ok`) or until an error that retrying cannot fix. Honours pause requests
    /// ([`RunControl::pause_requested`], [`RunControl::hold`]).
    fn run(self: Arc<Self>, control: RunControl) -> RunFuture<Self::Error>;

    /// The phase the pipeline reports while a run is active: STARTING, SNAPSHOTTING, RUNNING
    /// or RETRYING.
    fn phase(&self) -> State;
}

/// A run's view of the requests made to it.
#[derive(Debug, Clone)]
pub struct RunControl {
    cancel: CancellationToken,
    pause: watch::Receiver<bool>,
    paused: Arc<watch::Sender<bool>>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

impl RunControl {
    /// A run that is never paused, stopped by `cancel` (for tools and tests that run a
    /// pipeline without a controller).
    pub fn unmanaged(cancel: CancellationToken) -> Self {
        let (_, pause) = watch::channel(false);
        let (paused, _) = watch::channel(false);
        Self {
            cancel,
            pause,
            paused: Arc::new(paused),
            abandoned: Arc::default(),
        }
    }

    /// Whether a stop gave up on this run (its deadline passed): what still runs of it (a
    /// thread that cannot be aborted) must no longer report, as a newer run may be reporting.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The token cancelled when the run is asked to stop.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the run is asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the run is asked to stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the run is asked to pause.
    pub fn pause_requested(&self) -> bool {
        *self.pause.borrow()
    }

    /// Completes when a pause is requested (at once if one is).
    pub async fn pause_wanted(&self) {
        let mut pause = self.pause.clone();
        if pause.wait_for(|p| *p).await.is_err() {
            // Nobody can ask for a pause any more (an unmanaged run): never.
            std::future::pending::<()>().await;
        }
    }

    /// Reports whether the run is paused now, for runs that cannot wait in [`hold`]
    /// (a consumer thread that must keep polling): `true` once nothing is in flight and no
    /// new work is taken, `false` once working again.
    ///
    /// [`hold`]: RunControl::hold
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_if_modified(|p| {
            let changed = *p != paused;
            *p = paused;
            changed
        });
    }

    /// Reports the run paused (call it with nothing in flight) and waits until it is resumed
    /// or asked to stop. Returns at once when no pause is requested.
    pub async fn hold(&self) {
        if !self.pause_requested() {
            return;
        }
        self.set_paused(true);
        let mut pause = self.pause.clone();
        tokio::select! {
            _ = pause.wait_for(|p| !*p) => {}
            () = self.cancel.cancelled() => {}
        }
        self.set_paused(false);
    }
}

/// What the controller knows of the run, published on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlView {
    /// STOPPED, FAILED, STOPPING, or (for an active run) STARTING until the pipeline reports
    /// its own phase.
    pub state: State,
    /// A pause was requested and the run confirmed it.
    pub paused: bool,
    /// The error of a failed run (or of a stop that had to abandon work).
    pub error: Option<String>,
}

impl ControlView {
    /// The public state, given the phase the pipeline reports (STARTING, SNAPSHOTTING,
    /// RUNNING, RETRYING; anything else is ignored).
    pub fn state(&self, phase: State) -> State {
        match self.state {
            State::Stopped | State::Failed | State::Stopping => self.state,
            _ if self.paused => State::Paused,
            _ => match phase {
                State::Starting | State::Snapshotting | State::Running | State::Retrying => phase,
                _ => State::Starting,
            },
        }
    }
}

/// One active run.
struct Run {
    cancel: CancellationToken,
    pause: watch::Sender<bool>,
    paused: watch::Receiver<bool>,
    /// Follows the run and publishes how it ended.
    task: JoinHandle<()>,
    /// The run itself.
    inner: tokio::task::AbortHandle,
    /// Set when a stop gives up on the run.
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

/// Runs a pipeline on request; see the module documentation.
pub struct Controller<P: Pipeline> {
    service: &'static str,
    pipeline: Arc<P>,
    run: Mutex<Option<Run>>,
    view: Arc<watch::Sender<ControlView>>,
}

impl<P: Pipeline> Controller<P> {
    /// A controller of `pipeline`, STOPPED. `service` names it in refusals (`capture`).
    pub fn new(service: &'static str, pipeline: Arc<P>) -> Self {
        let (view, _) = watch::channel(ControlView {
            state: State::Stopped,
            paused: false,
            error: None,
        });
        Self {
            service,
            pipeline,
            run: Mutex::new(None),
            view: Arc::new(view),
        }
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<P> {
        &self.pipeline
    }

    /// What the controller knows now.
    pub fn view(&self) -> ControlView {
        self.view.borrow().clone()
    }

    /// The public state now.
    pub fn state(&self) -> State {
        self.view.borrow().state(self.pipeline.phase())
    }

    /// Follows the controller's view.
    pub fn subscribe(&self) -> watch::Receiver<ControlView> {
        self.view.subscribe()
    }

    fn refuse(&self, action: &'static str, state: State, hint: &str) -> ControlError {
        Refused {
            action,
            service: self.service,
            state,
            hint: hint.to_owned(),
        }
        .into()
    }

    /// Starts a run: allowed when STOPPED or FAILED (a retry after a failure).
    pub async fn start(&self) -> Result<(), ControlError> {
        let mut run = self.run.lock().await;
        let state = self.state();
        if state.is_active() {
            return Err(self.refuse("start", state, "it is already started"));
        }
        *run = Some(self.launch(false));
        Ok(())
    }

    /// Spawns a run; `paused` runs start with a pause requested.
    fn launch(&self, paused: bool) -> Run {
        let cancel = CancellationToken::new();
        let (pause, pause_rx) = watch::channel(paused);
        let (paused_tx, paused_rx) = watch::channel(false);
        let abandoned: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let control = RunControl {
            cancel: cancel.clone(),
            pause: pause_rx,
            paused: Arc::new(paused_tx),
            abandoned: abandoned.clone(),
        };
        self.view.send_replace(ControlView {
            state: State::Starting,
            paused: false,
            error: None,
        });
        let view = self.view.clone();
        let mut confirmations = paused_rx.clone();
        // The run is a task of its own, so that a panic in it is a FAILED run rather than a
        // controller stuck in STARTING.
        let run = tokio::spawn(self.pipeline.clone().run(control));
        let inner = run.abort_handle();
        let future = async move {
            match run.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(e) if e.is_panic() => Err(format!("the run panicked: {e}")),
                Err(_) => Ok(()),
            }
        };
        let task = tokio::spawn(async move {
            // The run's pause confirmations go into the view while it runs.
            let follow = async {
                while confirmations.changed().await.is_ok() {
                    let paused = *confirmations.borrow_and_update();
                    view.send_if_modified(|v| {
                        let changed = v.paused != paused;
                        v.paused = paused;
                        changed
                    });
                }
                std::future::pending::<()>().await;
            };
            let result = tokio::select! {
                result = future => result,
                () = follow => Ok(()),
            };
            view.send_modify(|v| {
                v.paused = false;
                match result {
                    Ok(()) => v.state = State::Stopped,
                    Err(error) => {
                        v.state = State::Failed;
                        v.error = Some(error);
                    }
                }
            });
        });
        Run {
            cancel,
            pause,
            paused: paused_rx,
            task,
            inner,
            abandoned,
        }
    }

    /// Cancels `active` and waits for it up to `deadline`; whether it finished in time.
    async fn finish(active: Run, deadline: Duration) -> bool {
        active.cancel.cancel();
        active.pause.send_replace(false);
        let mut task = active.task;
        if tokio::time::timeout(deadline, &mut task).await.is_ok() {
            return true;
        }
        active
            .abandoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        active.inner.abort();
        task.abort();
        let _ = task.await;
        false
    }

    /// Stops the run: the pipeline finishes the work in flight and commits. After `deadline`
    /// the run is abandoned (its uncommitted work is redone by the next start) and the error
    /// says so. Allowed in every active state; FAILED → STOPPED clears the error.
    pub async fn stop(&self, deadline: Duration) -> Result<(), ControlError> {
        let mut run = self.run.lock().await;
        let state = self.state();
        if state == State::Stopped {
            return Err(self.refuse("stop", state, "it is already stopped"));
        }
        if state == State::Failed {
            self.view.send_modify(|v| {
                v.state = State::Stopped;
                v.error = None;
            });
            *run = None;
            return Ok(());
        }
        let Some(active) = run.take() else {
            self.view.send_modify(|v| v.state = State::Stopped);
            return Ok(());
        };
        self.view.send_modify(|v| v.state = State::Stopping);
        let finished = Self::finish(active, deadline).await;
        self.view.send_modify(|v| {
            v.state = State::Stopped;
            v.paused = false;
            if !finished {
                v.error = Some(format!(
                    "the stop deadline of {deadline:?} passed before the work in flight was \
                     finished; it was abandoned uncommitted and is redone at the next start"
                ));
            }
        });
        Ok(())
    }

    /// Pauses the run: it finishes the work in flight, takes no new work and confirms;
    /// allowed when RUNNING. Waits up to `deadline` for the confirmation (the pause stays
    /// requested if it does not come in time).
    pub async fn pause(&self, deadline: Duration) -> Result<(), ControlError> {
        let run = self.run.lock().await;
        let state = self.state();
        let active = match (&*run, state) {
            (Some(active), State::Running) => active,
            (_, State::Paused) => {
                return Err(self.refuse("pause", state, "it is already paused"));
            }
            _ => {
                return Err(self.refuse(
                    "pause",
                    state,
                    "a capture or apply can be paused only while RUNNING",
                ));
            }
        };
        active.pause.send_replace(true);
        let mut paused = active.paused.clone();
        match tokio::time::timeout(deadline, paused.wait_for(|p| *p)).await {
            Ok(Ok(_)) => {
                self.view.send_if_modified(|v| {
                    let changed = !v.paused;
                    v.paused = true;
                    changed
                });
                Ok(())
            }
            Ok(Err(_)) => Err(self.refuse(
                "pause",
                self.state(),
                "the run ended before it paused; see the status error, then Start it",
            )),
            Err(_) => Err(ControlError::Timeout {
                action: "pause",
                after: deadline,
                detail: "the work in flight has not finished; the pause stays requested".into(),
            }),
        }
    }

    /// Resumes a paused run (or withdraws a pause not yet confirmed), waiting up to
    /// `deadline` for the run to confirm.
    pub async fn resume(&self, deadline: Duration) -> Result<(), ControlError> {
        let run = self.run.lock().await;
        let state = self.state();
        match &*run {
            Some(active) if *active.pause.borrow() && state.is_active() => {
                active.pause.send_replace(false);
                let mut paused = active.paused.clone();
                if tokio::time::timeout(deadline, paused.wait_for(|p| !*p))
                    .await
                    .is_err()
                {
                    return Err(ControlError::Timeout {
                        action: "resume",
                        after: deadline,
                        detail: "the run has not confirmed yet (apply re-reads its stored \
                                 offsets: is the target reachable?); it resumes when it can"
                            .into(),
                    });
                }
                self.view.send_if_modified(|v| {
                    let changed = v.paused;
                    v.paused = false;
                    changed
                });
                Ok(())
            }
            _ => Err(self.refuse("resume", state, "only a paused run can be resumed")),
        }
    }

    /// Runs `change` while no run is streaming (STOPPED, FAILED or PAUSED), holding off
    /// every other request meanwhile; `action` names the request in a refusal. A paused run is
    /// stopped for it and started again paused, so the change applies to what it reads next.
    pub async fn while_idle<T, F, Fut>(
        &self,
        action: &'static str,
        deadline: Duration,
        change: F,
    ) -> Result<T, ControlError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut run = self.run.lock().await;
        let state = self.state();
        match state {
            State::Stopped | State::Failed => Ok(change().await),
            State::Paused => {
                if let Some(active) = run.take() {
                    Self::finish(active, deadline).await;
                }
                let result = change().await;
                let relaunched = self.launch(true);
                let mut paused = relaunched.paused.clone();
                *run = Some(relaunched);
                // The new run confirms its pause before it reads anything.
                let _ = tokio::time::timeout(deadline, paused.wait_for(|p| *p)).await;
                Ok(result)
            }
            _ => Err(self.refuse(action, state, "stop or pause it first")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    /// Works in 5 ms units, pausing and stopping only between units.
    #[derive(Default)]
    struct Units {
        done: AtomicU64,
        fail: AtomicBool,
        ignore_stop: AtomicBool,
        seen: std::sync::Mutex<Option<RunControl>>,
    }

    impl Pipeline for Units {
        type Error = String;

        fn run(self: Arc<Self>, control: RunControl) -> RunFuture<String> {
            if let Ok(mut seen) = self.seen.lock() {
                *seen = Some(control.clone());
            }
            Box::pin(async move {
                loop {
                    control.hold().await;
                    if control.is_cancelled() && !self.ignore_stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    if self.fail.load(Ordering::SeqCst) {
                        return Err("the source refused the connection".to_owned());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    self.done.fetch_add(1, Ordering::SeqCst);
                }
            })
        }

        fn phase(&self) -> State {
            State::Running
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    async fn settled(controller: &Controller<Units>, state: State) -> anyhow::Result<()> {
        let mut view = controller.subscribe();
        tokio::time::timeout(WAIT, view.wait_for(|v| v.state(State::Running) == state))
            .await
            .map_err(|_| anyhow::anyhow!("never {state}: {:?}", controller.view()))??;
        Ok(())
    }

    fn refused(result: Result<(), ControlError>) -> anyhow::Result<Refused> {
        match result {
            Err(ControlError::Refused(refused)) => Ok(refused),
            other => anyhow::bail!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn transitions_are_allowed_or_refused_by_state() -> anyhow::Result<()> {
        let units = Arc::new(Units::default());
        let controller = Controller::new("capture", units.clone());
        let refusal = refused(controller.pause(WAIT).await)?;
        assert_eq!(refusal.state, State::Stopped);
        assert_eq!(
            refusal.to_string(),
            "cannot pause: the capture is STOPPED; a capture or apply can be paused only while \
             RUNNING"
        );
        assert_eq!(refused(controller.stop(WAIT).await)?.state, State::Stopped);
        assert_eq!(
            refused(controller.resume(WAIT).await)?.state,
            State::Stopped
        );

        controller.start().await?;
        settled(&controller, State::Running).await?;
        assert_eq!(refused(controller.start().await)?.state, State::Running);

        controller.pause(WAIT).await?;
        assert_eq!(controller.state(), State::Paused);
        let at_pause = units.done.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            units.done.load(Ordering::SeqCst),
            at_pause,
            "worked while paused"
        );
        assert_eq!(refused(controller.pause(WAIT).await)?.state, State::Paused);

        controller.resume(WAIT).await?;
        assert_eq!(controller.state(), State::Running);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            units.done.load(Ordering::SeqCst) > at_pause,
            "no work after resume"
        );

        controller.stop(WAIT).await?;
        assert_eq!(controller.state(), State::Stopped);
        assert_eq!(controller.view().error, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_failure_is_kept_until_a_start_retries() -> anyhow::Result<()> {
        let units = Arc::new(Units::default());
        let controller = Controller::new("apply", units.clone());
        units.fail.store(true, Ordering::SeqCst);
        controller.start().await?;
        settled(&controller, State::Failed).await?;
        assert_eq!(
            controller.view().error.as_deref(),
            Some("the source refused the connection")
        );
        assert_eq!(refused(controller.pause(WAIT).await)?.state, State::Failed);
        units.fail.store(false, Ordering::SeqCst);
        controller.start().await?;
        settled(&controller, State::Running).await?;
        assert_eq!(controller.view().error, None);
        controller.stop(WAIT).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_stop_past_its_deadline_abandons_the_run_and_says_so() -> anyhow::Result<()> {
        let units = Arc::new(Units::default());
        let controller = Controller::new("capture", units.clone());
        units.ignore_stop.store(true, Ordering::SeqCst);
        controller.start().await?;
        settled(&controller, State::Running).await?;
        controller.stop(Duration::from_millis(100)).await?;
        let view = controller.view();
        assert_eq!(view.state, State::Stopped);
        assert!(
            view.error
                .as_deref()
                .is_some_and(|e| e.contains("redone at the next start")),
            "{view:?}"
        );
        let after = units.done.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(units.done.load(Ordering::SeqCst), after, "still running");
        let seen = units.seen.lock().map(|c| c.clone()).ok().flatten();
        assert!(
            seen.is_some_and(|c| c.is_abandoned()),
            "the abandoned run was not told"
        );
        Ok(())
    }

    #[tokio::test]
    async fn changes_while_paused_restart_the_run_paused() -> anyhow::Result<()> {
        let units = Arc::new(Units::default());
        let controller = Controller::new("capture", units.clone());
        controller.start().await?;
        settled(&controller, State::Running).await?;
        let refusal = controller.while_idle("seek", WAIT, || async {}).await;
        assert!(
            matches!(&refusal, Err(ControlError::Refused(r)) if r.state == State::Running),
            "{refusal:?}"
        );
        controller.pause(WAIT).await?;
        let seen = controller.while_idle("seek", WAIT, || async { 7 }).await?;
        assert_eq!(seen, 7);
        assert_eq!(controller.state(), State::Paused);
        let at_pause = units.done.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(units.done.load(Ordering::SeqCst), at_pause);
        controller.resume(WAIT).await?;
        settled(&controller, State::Running).await?;
        controller.stop(WAIT).await?;
        Ok(())
    }

    struct Panics;

    impl Pipeline for Panics {
        type Error = String;

        fn run(self: Arc<Self>, _control: RunControl) -> RunFuture<String> {
            Box::pin(async move { panic!("decoder bug") })
        }

        fn phase(&self) -> State {
            State::Running
        }
    }

    #[tokio::test]
    async fn a_panicking_run_is_failed_not_stuck() -> anyhow::Result<()> {
        let controller = Controller::new("capture", Arc::new(Panics));
        controller.start().await?;
        let mut view = controller.subscribe();
        tokio::time::timeout(WAIT, view.wait_for(|v| v.state == State::Failed)).await??;
        let error = controller.view().error.unwrap_or_default();
        assert!(error.contains("panicked"), "{error}");
        Ok(())
    }

    #[tokio::test]
    async fn an_unmanaged_run_never_sees_a_pause_request() {
        let control = RunControl::unmanaged(CancellationToken::new());
        let waited = tokio::time::timeout(Duration::from_millis(50), control.pause_wanted()).await;
        assert!(
            waited.is_err(),
            "pause_wanted returned for an unmanaged run"
        );
    }

    #[tokio::test]
    async fn concurrent_requests_are_served_one_at_a_time() -> anyhow::Result<()> {
        let units = Arc::new(Units::default());
        let controller = Arc::new(Controller::new("apply", units));
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let controller = controller.clone();
                tokio::spawn(async move { controller.start().await })
            })
            .collect();
        let mut accepted = 0;
        for start in starts {
            if start.await?.is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(
            accepted, 1,
            "exactly one of eight concurrent starts is accepted"
        );
        controller.stop(WAIT).await?;
        Ok(())
    }
}
