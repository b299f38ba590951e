//! Observability of the real binaries on the real stack: one trace from the source
//! transaction through Kafka to the target commit (received by an OTLP receiver run by the
//! test, over gRPC and over HTTP), the Prometheus endpoint's counts and lag, the probes, and
//! silence when no `OTEL_*` variable is set.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::apply::v1 as apply_pb;
use rowferry_shared::pb::apply::v1::apply_control_client::ApplyControlClient;
use rowferry_shared::pb::capture::v1 as capture_pb;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_shared::position::BinlogFilePosition;
use rowferry_tests::apply::{apply_binary, apply_toml, create_target_tables, wait_equal};
use rowferry_tests::capture::{binlog_end, capture_binary, capture_toml, create_database};
use rowferry_tests::control::{connect, free_port, service_command, terminate};
use rowferry_tests::http::{get, sample};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::otlp::{OtlpReceiver, ReceivedSpan};
use rowferry_tests::{Stack, unique_name, unique_server_id};

const TABLES: &[&str] = &[
    "a (id INT PRIMARY KEY, v INT NOT NULL)",
    "b (id INT PRIMARY KEY, v INT NOT NULL)",
];

/// A service process of a test, its stderr in `log`.
struct Service {
    child: tokio::process::Child,
    log: PathBuf,
}

/// Writes `toml` to `<tmp>/<name>/<service>.toml` and starts `binary` on it with `env`.
fn spawn(
    binary: &Path,
    name: &str,
    service: &str,
    toml: &str,
    env: &[(&str, String)],
) -> Result<Service> {
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join(format!("{service}.toml"));
    std::fs::write(&config, toml)?;
    let log = dir.join(format!("{service}.log"));
    let stderr = std::fs::File::create(&log)?;
    let mut command = service_command(binary);
    command
        .arg("--config")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    Ok(Service {
        child: command.spawn()?,
        log,
    })
}

impl Service {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(mut self, what: &str) -> Result<String> {
        terminate(&mut self.child, what)
            .await
            .with_context(|| format!("see {}", self.log.display()))?;
        Ok(self.log_text())
    }
}

/// A source database, its copy on the target, and the names of one test's capture and apply.
struct Replication {
    stack: Stack,
    admin: Conn,
    target: Conn,
    db: String,
    name: String,
    start: BinlogFilePosition,
}

impl Replication {
    /// Creates `tables` on both sides; the capture will start at the binlog's end.
    async fn new(prefix: &str, tables: &[&str]) -> Result<Self> {
        let stack = Stack::from_env()?;
        let (mut admin, db) = create_database(&stack, prefix, tables).await?;
        let target = create_target_tables(&stack, &db, tables).await?;
        let start = binlog_end(&mut admin).await?;
        Ok(Self {
            name: unique_name(prefix),
            stack,
            admin,
            target,
            db,
            start,
        })
    }

    /// Starts the capture; `control` is the `[control]` section's body (`""`: no endpoint).
    fn capture(&self, control: &str, env: &[(&str, String)]) -> Result<Service> {
        let toml = capture_toml(
            &self.stack,
            &self.name,
            &self.db,
            &self.start.to_string(),
            unique_server_id(),
            "",
        )
        .replace("grpc_listen = \"\"", control_or_none(control));
        spawn(&capture_binary()?, &self.name, "capture", &toml, env)
    }

    /// Starts the apply of the capture's topics with `extra` TOML; `control` as for capture.
    fn apply(&self, extra: &str, control: &str, env: &[(&str, String)]) -> Result<Service> {
        let pattern = format!("{}\\.{}\\..*", self.name, self.db);
        let toml = apply_toml(&self.stack, &self.name, &pattern, extra)
            .replace("grpc_listen = \"\"", control_or_none(control));
        spawn(&apply_binary()?, &self.name, "apply", &toml, env)
    }

    /// Waits until the target's `tables` equal the source's (rows and checksum).
    async fn wait_equal(&mut self, tables: &[&str]) -> Result<()> {
        let tables: Vec<(&str, &str)> = tables.iter().map(|t| (*t, "id")).collect();
        wait_equal(
            &mut self.admin,
            &mut self.target,
            &self.db,
            &tables,
            true,
            Duration::from_secs(90),
        )
        .await
    }

    /// The capture's topic of `table`.
    fn topic(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.name, self.db)
    }
}

/// The `[control]` body: `control`, or no endpoint when it is empty.
fn control_or_none(control: &str) -> &str {
    if control.is_empty() {
        "grpc_listen = \"\""
    } else {
        control
    }
}

/// A `[control]` line serving on 127.0.0.1:`port`.
fn control_on(port: u16) -> String {
    format!("grpc_listen = \"127.0.0.1:{port}\"")
}

/// Trace export to the receiver: fast batches, everything sampled.
fn otlp_env(endpoint: String, protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on".to_owned()),
    ]
}

/// The GTID of the last transaction committed on `conn` (MariaDB).
async fn last_gtid(conn: &mut Conn) -> Result<String> {
    let gtid: Option<String> = conn.query_first("SELECT @@last_gtid").await?;
    gtid.filter(|g| !g.is_empty())
        .context("the source reported no GTID for the transaction")
}

fn capture_span_of<'a>(spans: &'a [ReceivedSpan], gtid: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| {
        s.service() == "rowferry-capture" && s.attribute("rowferry.source.gtid") == Some(gtid)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_follows_a_source_transaction_from_the_binlog_to_the_target_commit() -> Result<()>
{
    let receiver = OtlpReceiver::start().await?;
    let mut run = Replication::new("otel", TABLES).await?;
    let capture_port = free_port()?;
    let mut env = otlp_env(format!("http://127.0.0.1:{}", receiver.grpc_port), "grpc");
    // A request event inside the control request's span: its log line must carry the ids.
    env.push(("RUST_LOG", "info,tower_http=debug".to_owned()));
    env.push(("ROWFERRY_CAPTURE_LOG__FORMAT", "json".to_owned()));
    let capture = run.capture(&control_on(capture_port), &env)?;
    let apply = run.apply("[apply]\ntransactional = true", "", &env)?;

    // One source transaction over two tables (two topics, so two partitions applied apart).
    let db = run.db.clone();
    run.admin
        .query_drop(format!(
            "BEGIN; INSERT INTO `{db}`.a VALUES (1, 1), (2, 2); \
             INSERT INTO `{db}`.b VALUES (1, 10); COMMIT"
        ))
        .await?;
    let gtid = last_gtid(&mut run.admin).await?;
    run.wait_equal(&["a", "b"])
        .await
        .with_context(|| format!("see {} and {}", capture.log.display(), apply.log.display()))?;

    let (producer, consumers) = receiver
        .wait_for(
            Duration::from_secs(30),
            "capture span with two apply children",
            |spans| {
                let producer = capture_span_of(spans, &gtid)?.clone();
                let consumers: Vec<ReceivedSpan> = spans
                    .iter()
                    .filter(|s| {
                        s.service() == "rowferry-apply"
                            && s.trace_id == producer.trace_id
                            && s.parent_span_id == producer.span_id
                    })
                    .cloned()
                    .collect();
                (consumers.len() >= 2).then_some((producer, consumers))
            },
        )
        .await?;

    // The capture span: a producer span with the source transaction's facts.
    ensure!(producer.kind == 4, "capture span kind {}", producer.kind);
    for (key, value) in [
        ("messaging.system", "kafka"),
        ("messaging.operation.type", "send"),
        ("db.system.name", "mariadb"),
        ("db.namespace", db.as_str()),
        ("rowferry.rows", "3"),
        ("messaging.batch.message_count", "3"),
        ("rowferry.binlog.file", run.start.file.as_str()),
    ] {
        ensure!(
            producer.attribute(key) == Some(value),
            "capture span {key} = {:?}, expected {value}: {producer:?}",
            producer.attribute(key)
        );
    }
    let tables = producer.attribute("rowferry.tables").unwrap_or_default();
    ensure!(
        tables == format!("{db}.a,{db}.b"),
        "rowferry.tables = {tables}"
    );
    for key in [
        "rowferry.binlog.position",
        "rowferry.binlog.end_position",
        "rowferry.source.commit_ts_ms",
    ] {
        ensure!(
            producer
                .attribute(key)
                .is_some_and(|v| v.parse::<i64>().is_ok_and(|n| n > 0)),
            "capture span {key}: {producer:?}"
        );
    }
    ensure!(
        producer.resource.get("service.version").map(String::as_str)
            == Some(env!("CARGO_PKG_VERSION"))
            && producer
                .resource
                .get("service.instance.id")
                .is_some_and(|id| id.len() == 36),
        "capture resource: {:?}",
        producer.resource
    );

    // The apply spans: consumer spans per partition, children of the capture span.
    let topic_a = run.topic("a");
    let topic_b = run.topic("b");
    let mut destinations = BTreeSet::new();
    for consumer in &consumers {
        ensure!(consumer.kind == 5, "apply span kind {}", consumer.kind);
        let destination = consumer
            .attribute("messaging.destination.name")
            .unwrap_or_default()
            .to_owned();
        let expected_records = if destination == topic_a { "2" } else { "1" };
        for (key, value) in [
            ("messaging.system", "kafka"),
            ("messaging.operation.type", "process"),
            ("messaging.batch.message_count", expected_records),
            ("rowferry.commit.changes", expected_records),
        ] {
            ensure!(
                consumer.attribute(key) == Some(value),
                "apply span {key} = {:?}, expected {value}: {consumer:?}",
                consumer.attribute(key)
            );
        }
        for key in [
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
        ] {
            ensure!(
                consumer.attribute(key).is_some(),
                "apply span without {key}"
            );
        }
        destinations.insert(destination);
    }
    ensure!(
        destinations == BTreeSet::from([topic_a.clone(), topic_b]),
        "apply spans cover {destinations:?}"
    );

    // Every record of the transaction carries the capture span's context.
    let traceparent = format!("00-{}-{}-01", producer.trace_id, producer.span_id);
    let records = read_committed(&run.stack.kafka_bootstrap, &topic_a)?;
    ensure!(
        records.len() == 2
            && records
                .iter()
                .all(|r| r.header("traceparent").as_deref() == Some(traceparent.as_str())),
        "records of {topic_a} do not carry {traceparent}: {:?}",
        records
            .iter()
            .map(|r| r.header("traceparent"))
            .collect::<Vec<_>>()
    );

    // A control call continues the caller's trace, and its log lines carry the ids.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut client = CaptureControlClient::new(connect(capture_port, || Ok(())).await?);
    let mut request = tonic::Request::new(capture_pb::GetStatusRequest {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{caller_trace}-{caller_span}-01").parse()?,
    );
    client.get_status(request).await?;
    let call = receiver
        .wait_for(Duration::from_secs(30), "traced GetStatus call", |spans| {
            spans
                .iter()
                .find(|s| s.trace_id == caller_trace && s.parent_span_id == caller_span)
                .cloned()
        })
        .await?;
    ensure!(
        call.name == "rowferry.capture.v1.CaptureControl/GetStatus"
            && call.kind == 2
            && call.attribute("rpc.system") == Some("grpc")
            && call.attribute("rpc.method") == Some("GetStatus"),
        "control span: {call:?}"
    );
    let log = capture.stop("capture").await?;
    apply.stop("apply").await?;
    let traced_line = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["trace_id"] == caller_trace);
    let traced_line =
        traced_line.with_context(|| format!("no JSON log line with trace_id in:\n{log}"))?;
    ensure!(
        traced_line["span_id"] == call.span_id.as_str(),
        "log line's span_id: {traced_line}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_spans_link_every_producer_span_and_http_export_works() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let mut run = Replication::new("otelbatch", &TABLES[..1]).await?;
    let capture_env = otlp_env(format!("http://127.0.0.1:{}", receiver.grpc_port), "grpc");
    let apply_env = otlp_env(
        format!("http://127.0.0.1:{}", receiver.http_port),
        "http/protobuf",
    );
    let capture = run.capture("", &capture_env)?;
    // Batch mode with a long linger, so the transactions below land in one batch.
    let apply = run.apply("[batch]\nlinger_ms = 3000", "", &apply_env)?;
    // Three transactions in one round trip: they reach Kafka, and so apply, together.
    let db = run.db.clone();
    run.admin
        .query_drop(format!(
            "INSERT INTO `{db}`.a VALUES (1, 1); INSERT INTO `{db}`.a VALUES (2, 2); \
             INSERT INTO `{db}`.a VALUES (3, 3)"
        ))
        .await?;
    run.wait_equal(&["a"])
        .await
        .with_context(|| format!("see {} and {}", capture.log.display(), apply.log.display()))?;
    let table = format!("{db}.a");
    receiver
        .wait_for(
            Duration::from_secs(30),
            "apply spans linking the three capture spans",
            |spans| {
                let producers: Vec<(String, String)> = spans
                    .iter()
                    .filter(|s| {
                        s.service() == "rowferry-capture"
                            && s.attribute("rowferry.tables") == Some(table.as_str())
                    })
                    .map(|s| (s.trace_id.clone(), s.span_id.clone()))
                    .collect();
                let linked: HashSet<(String, String)> = spans
                    .iter()
                    .filter(|s| s.service() == "rowferry-apply" && s.kind == 5)
                    .flat_map(|s| s.links.iter().cloned())
                    .collect();
                (producers.len() == 3 && producers.iter().all(|p| linked.contains(p))).then_some(())
            },
        )
        .await?;
    // The batch span is its own trace (links, not a parent).
    let batch = receiver.spans();
    let batch = batch
        .iter()
        .find(|s| s.service() == "rowferry-apply" && s.links.len() >= 2)
        .context("no apply span links two or more producers (one batch expected)")?;
    ensure!(
        batch.parent_span_id.is_empty()
            && batch.attribute("messaging.operation.type") == Some("process"),
        "batch span: {batch:?}"
    );
    capture.stop("capture").await?;
    apply.stop("apply").await?;
    Ok(())
}

/// Scrapes `port` until `sample` of the exposition satisfies `done`.
async fn scrape_until(
    port: u16,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (code, body) = get(port, "/metrics").await?;
        ensure!(code == 200, "/metrics answered {code}: {body}");
        if done(&body) {
            return Ok(body);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} not seen within {timeout:?}; last scrape:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The metric names in the dashboard's queries.
fn dashboard_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut panels: Vec<&serde_json::Value> = vec![dashboard];
    while let Some(value) = panels.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    let mut rest = expr.as_str();
                    while let Some(at) = rest.find("rowferry_") {
                        let name: String = rest[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        rest = &rest[at + name.len()..];
                        names.insert(name);
                    }
                }
                panels.extend(map.values());
            }
            serde_json::Value::Array(items) => panels.extend(items),
            _ => {}
        }
    }
    names
}

fn value(exposition: &str, name: &str, labels: &str) -> f64 {
    sample(exposition, name, labels).unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_was_replicated_and_lag_follows_a_paused_apply() -> Result<()> {
    let mut run = Replication::new("metrics", &TABLES[..1]).await?;
    let (capture_metrics, apply_metrics, apply_port) = (free_port()?, free_port()?, free_port()?);
    let capture = run.capture(
        "",
        &[(
            "ROWFERRY_CAPTURE_METRICS__LISTEN",
            format!("127.0.0.1:{capture_metrics}"),
        )],
    )?;
    let apply = run.apply(
        "",
        &format!("{}\nautostart = false", control_on(apply_port)),
        &[(
            "ROWFERRY_APPLY_METRICS__LISTEN",
            format!("127.0.0.1:{apply_metrics}"),
        )],
    )?;
    let mut client = ApplyControlClient::new(connect(apply_port, || Ok(())).await?);

    // Probes: alive at once; ready only once started.
    ensure!(get(apply_metrics, "/healthz").await?.0 == 200, "healthz");
    let (code, body) = get(apply_metrics, "/readyz").await?;
    ensure!(
        code == 503 && body.contains("the apply is STOPPED"),
        "readyz before start: {code} {body}"
    );
    client.start(apply_pb::StartRequest {}).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = get(apply_metrics, "/readyz").await?;
        if code == 200 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "readyz after start: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 300 inserts in 3 transactions, 50 updates, 20 deletes.
    let db = run.db.clone();
    for batch in 0..3 {
        let values: Vec<String> = (1..=100)
            .map(|i| format!("({id}, {id})", id = batch * 100 + i))
            .collect();
        run.admin
            .query_drop(format!("INSERT INTO `{db}`.a VALUES {}", values.join(",")))
            .await?;
    }
    run.admin
        .query_drop(format!("UPDATE `{db}`.a SET v = v + 1 WHERE id <= 50"))
        .await?;
    run.admin
        .query_drop(format!("DELETE FROM `{db}`.a WHERE id > 280"))
        .await?;
    run.wait_equal(&["a"]).await?;
    let rows = |body: &str, service: &str, op: &str| {
        value(
            body,
            &format!("rowferry_{service}_rows_total"),
            &format!("op=\"{op}\""),
        )
    };
    let captured = scrape_until(
        capture_metrics,
        "capture counts",
        Duration::from_secs(10),
        |b| rows(b, "capture", "d") == 20.0,
    )
    .await?;
    ensure!(
        rows(&captured, "capture", "c") == 300.0
            && rows(&captured, "capture", "u") == 50.0
            // Each delete is followed by its tombstone.
            && value(&captured, "rowferry_capture_records_total", "") == 390.0
            && value(&captured, "rowferry_capture_source_transactions_total", "") >= 5.0
            && value(&captured, "rowferry_capture_kafka_commit_duration_seconds_count", "") >= 1.0
            && value(&captured, "rowferry_capture_kafka_transaction_records_sum", "") == 390.0
            && value(&captured, "rowferry_capture_state", "state=\"RUNNING\"") == 1.0,
        "capture metrics:\n{captured}"
    );
    let applied = scrape_until(
        apply_metrics,
        "apply counts",
        Duration::from_secs(10),
        |b| {
            rows(b, "apply", "d") == 20.0 && value(b, "rowferry_apply_tombstones_total", "") == 20.0
        },
    )
    .await?;
    ensure!(
        rows(&applied, "apply", "c") == 300.0
            && rows(&applied, "apply", "u") == 50.0
            && value(&applied, "rowferry_apply_records_total", "") == 370.0
            && value(&applied, "rowferry_apply_tombstones_total", "") == 20.0
            && value(&applied, "rowferry_apply_batch_changes_sum", "") == 370.0
            && value(&applied, "rowferry_apply_target_transactions_total", "") >= 1.0
            && value(
                &applied,
                "rowferry_apply_statement_duration_seconds_count",
                ""
            ) >= 1.0
            && value(&applied, "rowferry_apply_commit_duration_seconds_count", "") >= 1.0,
        "apply metrics:\n{applied}"
    );
    scrape_until(
        apply_metrics,
        "apply caught up",
        Duration::from_secs(10),
        |b| {
            value(b, "rowferry_apply_lag_records", "") == 0.0
                && value(b, "rowferry_apply_lag_seconds", "") == 0.0
        },
    )
    .await?;

    // Paused: the lag in records and in seconds rises; resumed: both fall to 0.
    client
        .pause(apply_pb::PauseRequest { timeout: None })
        .await?;
    for id in 1001..=1200 {
        run.admin
            .query_drop(format!("INSERT INTO `{db}`.a VALUES ({id}, 0)"))
            .await?;
    }
    let paused = scrape_until(
        apply_metrics,
        "lag while paused",
        Duration::from_secs(20),
        |b| value(b, "rowferry_apply_lag_records", "") >= 200.0,
    )
    .await?;
    let first_lag = value(&paused, "rowferry_apply_lag_seconds", "");
    ensure!(
        first_lag > 0.0 && value(&paused, "rowferry_apply_state", "state=\"PAUSED\"") == 1.0,
        "paused apply metrics:\n{paused}"
    );
    ensure!(
        get(apply_metrics, "/readyz").await?.0 == 200,
        "a paused apply is ready"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    scrape_until(apply_metrics, "rising lag", Duration::from_secs(5), |b| {
        value(b, "rowferry_apply_lag_seconds", "") >= first_lag + 1.0
    })
    .await?;
    client.resume(apply_pb::ResumeRequest {}).await?;
    let resumed = scrape_until(
        apply_metrics,
        "lag back to 0",
        Duration::from_secs(60),
        |b| {
            value(b, "rowferry_apply_lag_records", "") == 0.0
                && value(b, "rowferry_apply_lag_seconds", "") == 0.0
                && rows(b, "apply", "c") == 500.0
        },
    )
    .await?;
    ensure!(
        value(&resumed, "rowferry_apply_state", "state=\"RUNNING\"") == 1.0,
        "{resumed}"
    );

    // Every metric the Grafana dashboard queries is served by one of the two.
    let (_, captured) = get(capture_metrics, "/metrics").await?;
    let dashboard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/observability/grafana/dashboards/rowferry.json"),
    )?;
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard)?;
    let queried = dashboard_metrics(&dashboard);
    ensure!(queried.len() >= 15, "dashboard queries {queried:?}");
    for name in &queried {
        let served = format!("{captured}\n{resumed}").lines().any(|line| {
            line.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        });
        ensure!(
            served,
            "the dashboard queries {name}, which neither service serves"
        );
    }
    capture.stop("capture").await?;
    apply.stop("apply").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_otel_variables_nothing_is_exported_and_replication_works() -> Result<()> {
    // The OTLP default endpoints: an exporter on by default would send here.
    let receiver = OtlpReceiver::start_on(4317, 4318)
        .await
        .context("ports 4317/4318 (the OTLP defaults) must be free for this test")?;
    let mut run = Replication::new("nootel", &TABLES[..1]).await?;
    // Variables that describe the service but do not turn export on.
    let env = [
        ("OTEL_SERVICE_NAME", "should-not-export".to_owned()),
        ("RUST_LOG", "info,tower_http=debug".to_owned()),
    ];
    let capture = run.capture("", &env)?;
    let apply = run.apply("", "", &env)?;
    let insert = format!("INSERT INTO `{}`.a VALUES (1, 1), (2, 2)", run.db);
    run.admin.query_drop(insert).await?;
    run.wait_equal(&["a"]).await?;
    let capture_log = capture.stop("capture").await?;
    let apply_log = apply.stop("apply").await?;
    ensure!(
        receiver.requests() == 0,
        "{} export requests arrived",
        receiver.requests()
    );
    let records = read_committed(&run.stack.kafka_bootstrap, &run.topic("a"))?;
    ensure!(
        records.len() == 2 && records.iter().all(|r| r.header("traceparent").is_none()),
        "records carry trace headers with tracing off"
    );
    ensure!(
        !capture_log.contains("trace_id") && !apply_log.contains("trace_id"),
        "log lines carry trace ids with tracing off"
    );
    Ok(())
}
