//! rowferryctl: controls a rowferry-capture or rowferry-apply over its gRPC control API.
//!
//! Human output by default, `--json` (the proto3 JSON mapping, as grpcurl prints it) for
//! scripts. Exit codes: 0 done; 1 failed (any other error); 2 bad usage; 3 service
//! unreachable; 4 refused in the current state (FAILED_PRECONDITION); 5 invalid request
//! (INVALID_ARGUMENT, OUT_OF_RANGE); 6 timed out (DEADLINE_EXCEEDED); 7 not allowed
//! (UNAUTHENTICATED, PERMISSION_DENIED).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rowferry_shared::pb::apply::v1 as apply;
use rowferry_shared::pb::apply::v1::apply_control_client::ApplyControlClient;
use rowferry_shared::pb::capture::v1 as capture;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_shared::pb::control::v1::{Boundary, State};
use rowferry_shared::pb::wkt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Controls a rowferry-capture or rowferry-apply over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Control endpoint of the service.
    #[arg(
        long,
        env = "ROWFERRY_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    addr: String,
    /// Which service listens there; `auto` asks its health service.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    service: ServiceKind,
    /// Print the answer as JSON (the proto3 JSON mapping).
    #[arg(long, global = true)]
    json: bool,
    /// Give up on a request after this many seconds.
    #[arg(long, default_value_t = 60, global = true)]
    deadline: u64,
    /// File holding the bearer token the service wants (its control.token_file).
    #[arg(long, env = "ROWFERRY_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to check the service's certificate with (https:// addresses).
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM), for services that require one (mutual TLS).
    #[arg(long, global = true, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, requires = "cert")]
    key: Option<PathBuf>,
    /// Name to expect in the service's certificate, when it is not the --addr host.
    #[arg(long, global = true)]
    tls_domain: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServiceKind {
    Auto,
    Capture,
    Apply,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The status now.
    Status,
    /// The status on every change (and at least every second) until interrupted.
    Watch {
        /// Stop after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Start the pipeline (when STOPPED or FAILED).
    Start,
    /// Stop gracefully: finish and commit the work in flight.
    Stop {
        /// Seconds to wait for the work in flight before abandoning it.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Stop taking new work after committing what is in flight (when RUNNING).
    Pause {
        /// Seconds to wait for the work in flight.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Continue after a pause.
    Resume,
    /// Move where the pipeline continues from (when STOPPED, FAILED or PAUSED).
    Seek(SeekArgs),
    /// Capture: re-read tables while streaming goes on (incremental snapshot), or pause,
    /// resume or cancel the one running.
    Snapshot(SnapshotArgs),
    /// Exit 0 when the service is ready (its pipeline RUNNING, SNAPSHOTTING or PAUSED), 1 when
    /// not: a container health check. Needs no token.
    Health {
        /// Only ask whether the process answers, whatever its pipeline does (liveness).
        #[arg(long)]
        live: bool,
    },
}

#[derive(Debug, Args)]
struct SnapshotArgs {
    /// Tables to re-read, as database.table.
    tables: Vec<String>,
    /// Rows per chunk (default 1024).
    #[arg(long)]
    chunk_rows: Option<u32>,
    /// Pause the incremental snapshot running.
    #[arg(long, conflicts_with_all = ["resume", "cancel", "tables"])]
    pause: bool,
    /// Resume it.
    #[arg(long, conflicts_with_all = ["cancel", "tables"])]
    resume: bool,
    /// Cancel it (its progress is dropped).
    #[arg(long, conflicts_with = "tables")]
    cancel: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "target")]
struct SeekTarget {
    /// Capture: a binlog position `file:pos`.
    #[arg(long)]
    binlog: Option<String>,
    /// A GTID set: capture continues after it; apply from the first record not in it.
    #[arg(long)]
    gtid: Option<String>,
    /// The oldest position still available.
    #[arg(long)]
    earliest: bool,
    /// The current end.
    #[arg(long)]
    latest: bool,
    /// The first transaction (capture) or record (apply) at or after this RFC 3339 time.
    #[arg(long)]
    time: Option<String>,
    /// Apply: `topic:partition:offset`, repeatable.
    #[arg(long)]
    offset: Vec<String>,
}

#[derive(Debug, Args)]
struct SeekArgs {
    #[command(flatten)]
    target: SeekTarget,
    /// Only check the position and print what it resolves to.
    #[arg(long)]
    validate_only: bool,
}

/// A failure with the exit code scripts see.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error = error.into();
        let status = error.downcast_ref::<tonic::Status>();
        // A status made on this side from a broken connection (wrong protocol, TLS refused)
        // carries the connection error as its source; the service's own answers do not.
        let broken = status.is_some_and(|s| {
            std::error::Error::source(s).is_some()
                && matches!(s.code(), tonic::Code::Unknown | tonic::Code::Internal)
        });
        let code = match status.map(tonic::Status::code) {
            _ if broken => 3,
            Some(tonic::Code::Unavailable) => 3,
            Some(tonic::Code::FailedPrecondition) => 4,
            Some(tonic::Code::InvalidArgument | tonic::Code::OutOfRange) => 5,
            Some(tonic::Code::DeadlineExceeded) => 6,
            Some(tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => 7,
            _ if error.downcast_ref::<tonic::transport::Error>().is_some() => 3,
            _ => 1,
        };
        Self { code, error }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rowferryctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let message = match failure.error.downcast_ref::<tonic::Status>() {
                Some(status) => format!("{:?}: {}", status.code(), status.message()),
                None => format!("{:#}", failure.error),
            };
            eprintln!("rowferryctl: {message}");
            ExitCode::from(failure.code)
        }
    }
}

fn read_file(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // A stop or pause may take its whole --wait; a watch runs until interrupted.
    let deadline = match &cli.command {
        Command::Watch { .. } => None,
        Command::Stop { wait } | Command::Pause { wait } => {
            Some(Duration::from_secs(cli.deadline.max(1).max(wait + 15)))
        }
        _ => Some(Duration::from_secs(cli.deadline.max(1))),
    };
    let mut endpoint = Endpoint::from_shared(cli.addr.clone())
        .map_err(|_| {
            usage(format!(
                "--addr {:?} is not a URL (e.g. http://127.0.0.1:50051)",
                cli.addr
            ))
        })?
        .connect_timeout(Duration::from_secs(5));
    if let Some(deadline) = deadline {
        endpoint = endpoint.timeout(deadline);
    }
    let tls_flags = cli.ca_cert.is_some() || cli.cert.is_some() || cli.tls_domain.is_some();
    if tls_flags && !cli.addr.starts_with("https://") {
        // tonic would connect in plaintext and send the token in the clear.
        return Err(usage(format!(
            "TLS options need an https:// address, not {:?}",
            cli.addr
        )));
    }
    if cli.addr.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &cli.ca_cert {
            tls = tls.ca_certificate(Certificate::from_pem(read_file("--ca-cert", ca)?));
        }
        if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
            tls = tls.identity(Identity::from_pem(
                read_file("--cert", cert)?,
                read_file("--key", key)?,
            ));
        }
        if let Some(domain) = &cli.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| usage(format!("TLS settings: {e}")))?;
    }
    let token = match &cli.token_file {
        Some(path) => {
            let text = String::from_utf8(read_file("--token-file", path)?)
                .map_err(|_| usage(format!("--token-file {}: not UTF-8", path.display())))?;
            let value: MetadataValue<Ascii> =
                format!("Bearer {}", text.trim_end_matches(['\n', '\r']))
                    .parse()
                    .map_err(|_| {
                        usage(format!(
                            "--token-file {}: not a valid header value",
                            path.display()
                        ))
                    })?;
            Some(value)
        }
        None => None,
    };
    let channel = endpoint.connect().await.map_err(|e| Failure {
        code: 3,
        error: anyhow::anyhow!("cannot reach {}: {e}", cli.addr),
    })?;
    let out = Output { json: cli.json };
    if let Command::Health { live } = cli.command {
        return health(&channel, cli.service, live, &out).await;
    }
    let kind = match cli.service {
        ServiceKind::Auto => detect(&channel).await?,
        other => other,
    };
    let auth = AddToken(token);
    match kind {
        ServiceKind::Apply => {
            let client = ApplyControlClient::with_interceptor(channel, auth);
            apply_command(CaptureOrApply::Apply(client), cli.command, &out).await
        }
        _ => {
            let client = CaptureControlClient::with_interceptor(channel, auth);
            apply_command(CaptureOrApply::Capture(client), cli.command, &out).await
        }
    }
}

/// Adds `authorization: Bearer <token>` to every control request, when given a token.
#[derive(Clone)]
struct AddToken(Option<MetadataValue<Ascii>>);

impl Interceptor for AddToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, AddToken>;

const CAPTURE_SERVICE: &str = capture::capture_control_server::SERVICE_NAME;
const APPLY_SERVICE: &str = apply::apply_control_server::SERVICE_NAME;

/// Which service answers: the one whose name its health service knows.
async fn detect(channel: &Channel) -> Result<ServiceKind, Failure> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for (name, kind) in [
        (CAPTURE_SERVICE, ServiceKind::Capture),
        (APPLY_SERVICE, ServiceKind::Apply),
    ] {
        match health
            .check(tonic_health::pb::HealthCheckRequest {
                service: name.into(),
            })
            .await
        {
            Ok(_) => return Ok(kind),
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
    }
    Err(anyhow::anyhow!(
        "the endpoint serves neither rowferry.capture.v1.CaptureControl nor \
         rowferry.apply.v1.ApplyControl; check --addr"
    )
    .into())
}

/// `rowferryctl health`: the health of the control service (readiness), or with `live` the
/// server's overall health `""`, which is SERVING as long as the process answers.
async fn health(
    channel: &Channel,
    service: ServiceKind,
    live: bool,
    out: &Output,
) -> Result<(), Failure> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let name = match (live, service) {
        (true, _) => "",
        (false, ServiceKind::Capture) => CAPTURE_SERVICE,
        (false, ServiceKind::Apply) => APPLY_SERVICE,
        (false, ServiceKind::Auto) => match detect(channel).await? {
            ServiceKind::Apply => APPLY_SERVICE,
            _ => CAPTURE_SERVICE,
        },
    };
    let status = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: name.into(),
        })
        .await?
        .into_inner()
        .status;
    let status = ServingStatus::try_from(status).unwrap_or(ServingStatus::Unknown);
    let label = if live { "process" } else { name };
    out.print(
        &serde_json::json!({ "service": name, "status": status.as_str_name() }),
        || format!("{label}: {}", status.as_str_name()),
    )?;
    if status == ServingStatus::Serving {
        return Ok(());
    }
    let why = if live {
        "the process is shutting down"
    } else {
        "the pipeline is not RUNNING, SNAPSHOTTING or PAUSED; `rowferryctl status` says what it \
         does and why"
    };
    Err(Failure {
        code: 1,
        error: anyhow::anyhow!("{label} is {}: {why}", status.as_str_name()),
    })
}

enum CaptureOrApply {
    Capture(CaptureControlClient<Authed>),
    Apply(ApplyControlClient<Authed>),
}

struct Output {
    json: bool,
}

impl Output {
    fn print<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if self.json {
            println!("{}", serde_json::to_string(value)?);
        } else {
            println!("{}", human());
        }
        Ok(())
    }
}

fn timeout(seconds: u64) -> Option<wkt::Duration> {
    Some(wkt::Duration {
        seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
        nanos: 0,
    })
}

fn parse_time(text: &str) -> Result<wkt::Timestamp, Failure> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|e| Failure {
        code: 2,
        error: anyhow::anyhow!(
            "--time {text:?} is not an RFC 3339 time like 2026-11-26T10:00:00Z: {e}"
        ),
    })
}

fn usage(message: String) -> Failure {
    Failure {
        code: 2,
        error: anyhow::anyhow!(message),
    }
}

/// The commands both services answer alike, on a client `$c` of the generated package
/// `$pb`, each answer printed by `$print`; `Seek` runs `$seek` with the arguments in `$args`.
macro_rules! answer {
    ($c:ident, $pb:ident, $print:ident, $out:expr, $command:expr, $args:ident => $seek:block) => {
        match $command {
            Command::Status => $print(
                $out,
                $c.get_status($pb::GetStatusRequest {})
                    .await?
                    .into_inner()
                    .status,
            ),
            Command::Watch { count } => {
                let mut stream = $c
                    .watch_status($pb::WatchStatusRequest {})
                    .await?
                    .into_inner();
                let mut seen = 0;
                while let Some(update) = stream.message().await? {
                    $print($out, update.status)?;
                    seen += 1;
                    if count.is_some_and(|n| seen >= n) {
                        break;
                    }
                }
                Ok(())
            }
            Command::Start => $print(
                $out,
                $c.start($pb::StartRequest {}).await?.into_inner().status,
            ),
            Command::Stop { wait } => $print(
                $out,
                $c.stop($pb::StopRequest {
                    timeout: timeout(wait),
                })
                .await?
                .into_inner()
                .status,
            ),
            Command::Pause { wait } => $print(
                $out,
                $c.pause($pb::PauseRequest {
                    timeout: timeout(wait),
                })
                .await?
                .into_inner()
                .status,
            ),
            Command::Resume => $print(
                $out,
                $c.resume($pb::ResumeRequest {}).await?.into_inner().status,
            ),
            Command::Seek($args) => $seek,
            Command::Health { .. } => Err(usage("health is answered before this".into())),
            Command::Snapshot(_) => Err(usage(
                "snapshot is a rowferry-capture command; this endpoint serves rowferry-apply"
                    .into(),
            )),
        }
    };
}

async fn apply_command(
    client: CaptureOrApply,
    command: Command,
    out: &Output,
) -> Result<(), Failure> {
    match client {
        CaptureOrApply::Capture(mut c) => {
            if let Command::Snapshot(args) = &command {
                use capture::SnapshotAction as A;
                let action = if args.pause {
                    A::Pause
                } else if args.resume {
                    A::Resume
                } else if args.cancel {
                    A::Cancel
                } else if args.tables.is_empty() {
                    return Err(usage(
                        "give tables as database.table, or --pause, --resume or --cancel".into(),
                    ));
                } else {
                    A::Start
                };
                let answer = c
                    .snapshot(capture::SnapshotRequest {
                        tables: args.tables.clone(),
                        action: action as i32,
                        chunk_rows: args.chunk_rows.unwrap_or(0),
                    })
                    .await?
                    .into_inner();
                return print_capture(out, answer.status);
            }
            answer!(c, capture, print_capture, out, command, args => {
                use capture::seek_request::Target as T;
                let t = &args.target;
                let target = if let Some(binlog) = &t.binlog {
                    let (file, pos) = binlog
                        .rsplit_once(':')
                        .and_then(|(f, p)| Some((f.to_owned(), p.parse().ok()?)))
                        .ok_or_else(|| usage(format!("--binlog {binlog:?}: write it as file:pos, e.g. mysql-bin.000042:1234")))?;
                    T::BinlogPosition(capture::BinlogPosition {
                        file,
                        position: pos,
                    })
                } else if let Some(gtid) = &t.gtid {
                    T::GtidSet(gtid.clone())
                } else if t.earliest {
                    T::Boundary(Boundary::Earliest as i32)
                } else if t.latest {
                    T::Boundary(Boundary::Latest as i32)
                } else if let Some(time) = &t.time {
                    T::Timestamp(parse_time(time)?)
                } else {
                    return Err(usage("--offset is for apply; capture seeks to --binlog, --gtid, --earliest, --latest or --time".into()));
                };
                let answer = c
                    .seek(capture::SeekRequest {
                        target: Some(target),
                        validate_only: args.validate_only,
                    })
                    .await?
                    .into_inner();
                out.print(&answer, || {
                    let verb = if args.validate_only {
                        "would read from"
                    } else {
                        "reads next from"
                    };
                    format!(
                        "capture {verb} {}",
                        answer.position.as_ref().map(position).unwrap_or_default()
                    )
                })
            })
        }
        CaptureOrApply::Apply(mut c) => {
            answer!(c, apply, print_apply, out, command, args => {
                use apply::seek_request::Target as T;
                let t = &args.target;
                let target = if !t.offset.is_empty() {
                    let offsets = t
                        .offset
                        .iter()
                        .map(|o| {
                            let mut parts = o.rsplitn(3, ':');
                            let (Some(offset), Some(partition), Some(topic)) =
                                (parts.next(), parts.next(), parts.next())
                            else {
                                return Err(usage(format!(
                                    "--offset {o:?}: write it as topic:partition:offset"
                                )));
                            };
                            Ok(apply::PartitionOffset {
                                topic: topic.to_owned(),
                                partition: partition.parse().map_err(|_| {
                                    usage(format!("--offset {o:?}: the partition is not a number"))
                                })?,
                                offset: offset.parse().map_err(|_| {
                                    usage(format!("--offset {o:?}: the offset is not a number"))
                                })?,
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    T::Offsets(apply::PartitionOffsets { offsets })
                } else if let Some(gtid) = &t.gtid {
                    T::SourceGtidSet(gtid.clone())
                } else if t.earliest {
                    T::Boundary(Boundary::Earliest as i32)
                } else if t.latest {
                    T::Boundary(Boundary::Latest as i32)
                } else if let Some(time) = &t.time {
                    T::Timestamp(parse_time(time)?)
                } else {
                    return Err(usage("--binlog is for capture; apply seeks to --offset, --gtid, --earliest, --latest or --time".into()));
                };
                let answer = c
                    .seek(apply::SeekRequest {
                        target: Some(target),
                        validate_only: args.validate_only,
                    })
                    .await?
                    .into_inner();
                out.print(&answer, || {
                    let verb = if args.validate_only {
                        "would continue from"
                    } else {
                        "continues from"
                    };
                    let list: Vec<String> = answer
                        .offsets
                        .iter()
                        .map(|o| format!("  {}/{} at {}", o.topic, o.partition, o.offset))
                        .collect();
                    format!("apply {verb}:\n{}", list.join("\n"))
                })
            })
        }
    }
}

fn state_name(state: i32) -> &'static str {
    match State::try_from(state) {
        Ok(State::Stopped) => "STOPPED",
        Ok(State::Starting) => "STARTING",
        Ok(State::Snapshotting) => "SNAPSHOTTING",
        Ok(State::Running) => "RUNNING",
        Ok(State::Paused) => "PAUSED",
        Ok(State::Retrying) => "RETRYING",
        Ok(State::Stopping) => "STOPPING",
        Ok(State::Failed) => "FAILED",
        _ => "UNKNOWN",
    }
}

fn position(p: &capture::Position) -> String {
    let mut text = format!("{}:{}", p.file, p.pos);
    if p.file.is_empty() {
        text.clear();
    }
    if !p.gtid_set.is_empty() {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&format!("GTIDs {}", p.gtid_set));
    }
    text
}

fn uptime(d: Option<&wkt::Duration>) -> String {
    let s = d.map_or(0, |d| d.seconds.max(0));
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn print_capture(out: &Output, status: Option<capture::CaptureStatus>) -> Result<(), Failure> {
    let s = status.context("the answer has no status")?;
    out.print(&s, || {
        let mut lines = vec![format!("capture {}: {}", s.name, state_name(s.state))];
        if !s.error.is_empty() {
            lines.push(format!("  error      {}", s.error));
        }
        if !s.flavor.is_empty() {
            lines.push(format!(
                "  source     {} {} (server_id {})",
                s.flavor, s.server_version, s.server_id
            ));
        }
        lines.push(format!(
            "  committed  {}",
            s.committed
                .as_ref()
                .map(position)
                .unwrap_or_else(|| "nothing yet".into())
        ));
        if let Some(lag) = s.lag_seconds {
            lines.push(format!("  lag        {lag:.1} s"));
        }
        lines.push(format!(
            "  records    {} in {} Kafka transactions ({} source transactions)",
            s.records_committed, s.kafka_transactions, s.source_transactions
        ));
        if let Some(snapshot) = &s.snapshot {
            let kind = if snapshot.incremental {
                "incremental snapshot"
            } else {
                "initial snapshot"
            };
            let phase = match (snapshot.running, snapshot.paused) {
                (true, true) => "paused",
                (true, false) => "running",
                (false, _) => "done",
            };
            lines.push(format!(
                "  snapshot   {kind} {phase}: {} of ~{} rows",
                snapshot.rows, snapshot.estimated_rows
            ));
            for table in &snapshot.tables {
                lines.push(format!(
                    "             {} {} of ~{}{}",
                    table.table,
                    table.rows,
                    table.estimated_rows,
                    if table.done { " (done)" } else { "" }
                ));
            }
        }
        lines.push(format!(
            "  uptime     {}  {}",
            uptime(s.uptime.as_ref()),
            s.build
                .as_ref()
                .map(|b| format!("{} {} {}", b.service, b.version, b.build))
                .unwrap_or_default()
        ));
        lines.join("\n")
    })
}

fn print_apply(out: &Output, status: Option<apply::ApplyStatus>) -> Result<(), Failure> {
    let s = status.context("the answer has no status")?;
    out.print(&s, || {
        let mut lines = vec![format!(
            "apply {} (group {}): {}",
            s.name,
            s.group_id,
            state_name(s.state)
        )];
        if !s.error.is_empty() {
            lines.push(format!("  error      {}", s.error));
        }
        for p in &s.partitions {
            let lag = if p.lag >= 0 {
                p.lag.to_string()
            } else {
                "?".into()
            };
            lines.push(format!(
                "  {}/{}  offset {}  lag {lag}",
                p.topic, p.partition, p.offset
            ));
        }
        if let Some(lag) = s.lag_seconds {
            lines.push(format!("  lag        {lag:.1} s"));
        }
        lines.push(format!(
            "  applied    {} changes in {} transactions ({} dead-lettered)",
            s.records_applied, s.transactions_committed, s.dead_lettered
        ));
        lines.push(format!(
            "  uptime     {}  {}",
            uptime(s.uptime.as_ref()),
            s.build
                .as_ref()
                .map(|b| format!("{} {} {}", b.service, b.version, b.build))
                .unwrap_or_default()
        ));
        lines.join("\n")
    })
}
