//! Initial snapshot: existing rows delivered as `op = r` records at a consistent point, then
//! streaming from that point, with a write load running the whole time. Every key's records
//! are checked in order: at most one `r`, first; then each update exactly one version after
//! the last (a doubled change repeats a version, a missed one skips one); the folded result
//! equals the source. Apply then makes the target equal (CHECKSUM TABLE).
//!
//! The crash test `kill -9`s the capture binary in the middle of the snapshot and checks that
//! the restart resumes after the last committed chunk (no row read twice) and still streams
//! every change exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_capture::status::State;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_shared::pb::capture::v1::{
    CaptureStatus as CaptureStatusPb, GetStatusRequest, SnapshotAction, SnapshotRequest,
};
use rowferry_tests::apply::{self as apply_support, wait_equal};
use rowferry_tests::bench::{ORDERS, insert_orders, peak_rss_kib};
use rowferry_tests::capture::{
    InProcess, binlog_end, capture_binary, capture_toml, config, create_database,
};
use rowferry_tests::control::{connect, free_port, spawn_service, terminate};
use rowferry_tests::kafka::{delete_topics, read_committed};
use rowferry_tests::{Lcg, Stack, unique_name, unique_server_id};

const ITEMS: &str = "items (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))";
const TAGS: &str = "tags (name VARCHAR(40) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT NOT NULL)";
const NOTES: &str = "notes (a INT, b VARCHAR(20))";

async fn fill(admin: &mut Conn, db: &str, items: u64, tags: u64) -> Result<()> {
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items SELECT seq, 0, CONCAT('item ', seq) FROM `{db}`.seq_1_to_{items}"
        ))
        .await?;
    // Mixed case and widths, so the collation (not byte order) decides the key order.
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.tags SELECT CONCAT(IF(seq % 2, 'Tag-', 'tag-'), seq), 0 \
             FROM `{db}`.seq_1_to_{tags}"
        ))
        .await?;
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.notes SELECT seq, 'static' FROM `{db}`.seq_1_to_100"
        ))
        .await?;
    Ok(())
}

/// Small transactions until `stop`: updates of random items and tags (`v = v + 1`), inserts
/// of new items above `items`, deletes of random items.
async fn write_load(
    stack: Stack,
    db: String,
    items: u64,
    tags: u64,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Result<u64> {
    let mut conn = Conn::new(stack.source_admin_opts()?).await?;
    let mut rng = Lcg(seed);
    let next = AtomicU64::new(items + 1);
    let mut transactions = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = 1 + rng.next(items);
        let tag = 1 + rng.next(tags);
        let tag = format!("{}-{tag}", if tag % 2 == 1 { "Tag" } else { "tag" });
        let new = next.fetch_add(1, Ordering::Relaxed);
        let statement = match rng.next(10) {
            0 => format!("DELETE FROM `{db}`.items WHERE id = {id}"),
            1 | 2 => format!("INSERT INTO `{db}`.items VALUES ({new}, 0, 'new')"),
            3..=5 => format!("UPDATE `{db}`.tags SET v = v + 1 WHERE name = '{tag}'"),
            _ => format!(
                "BEGIN; UPDATE `{db}`.items SET v = v + 1 WHERE id = {id}; \
                 UPDATE `{db}`.tags SET v = v + 1 WHERE name = '{tag}'; COMMIT"
            ),
        };
        conn.query_drop(statement).await?;
        transactions += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(transactions)
}

/// What a topic's records say about each key, checked record by record.
#[derive(Default)]
struct Replay {
    rows: HashMap<String, i64>,
    reads: usize,
    changes: usize,
}

impl Replay {
    /// Applies every committed record of `topic`; fails at the first record that is out of
    /// order, doubled or follows a missed change.
    fn read(stack: &Stack, topic: &str, key: &str) -> Result<Self> {
        Self::read_as(stack, topic, key, false)
    }

    /// The same for a capture that started streaming at the binlog end and re-read the table
    /// with an incremental snapshot: rows it never saw may be updated or deleted, and a
    /// snapshot record may follow changes of its row (it then replaces them; a stale one is
    /// caught by the next update or the final comparison).
    fn read_incremental(stack: &Stack, topic: &str, key: &str) -> Result<Self> {
        Self::read_as(stack, topic, key, true)
    }

    fn read_as(stack: &Stack, topic: &str, key: &str, incremental: bool) -> Result<Self> {
        Self::read_with(stack, topic, key, incremental, false)
    }

    /// `repeated`: the table was snapshotted several times (a key may have several `r`).
    fn read_with(
        stack: &Stack,
        topic: &str,
        key: &str,
        incremental: bool,
        repeated: bool,
    ) -> Result<Self> {
        let mut replay = Replay::default();
        let mut seen_read: HashMap<String, bool> = HashMap::new();
        for record in read_committed(&stack.kafka_bootstrap, topic)? {
            let Some(_) = record.value else {
                continue; // tombstone
            };
            let value = record.json()?;
            let payload = &value["payload"];
            let op = payload["op"].as_str().context("op")?;
            let image = if op == "d" {
                &payload["before"]
            } else {
                &payload["after"]
            };
            let k = image[key].to_string();
            let v = |image: &serde_json::Value| image["v"].as_i64().context("v");
            match op {
                "r" => {
                    ensure!(
                        (repeated || !seen_read.contains_key(&k))
                            && (incremental || !replay.rows.contains_key(&k)),
                        "{topic}: snapshot record for {k} after other records of it (offset {})",
                        record.offset
                    );
                    seen_read.insert(k.clone(), true);
                    replay.rows.insert(k, v(image)?);
                    replay.reads += 1;
                }
                "c" => {
                    ensure!(
                        !replay.rows.contains_key(&k),
                        "{topic}: insert of {k}, which exists (offset {})",
                        record.offset
                    );
                    replay.rows.insert(k, v(image)?);
                    replay.changes += 1;
                }
                "u" => {
                    let now = v(image)?;
                    let before = replay.rows.get(&k).copied();
                    ensure!(
                        before == Some(now - 1) || (incremental && before.is_none()),
                        "{topic}: update of {k} to v={now} after v={before:?}: a change was \
                         doubled or missed (offset {})",
                        record.offset
                    );
                    replay.rows.insert(k, now);
                    replay.changes += 1;
                }
                "d" => {
                    ensure!(
                        replay.rows.remove(&k).is_some() || incremental,
                        "{topic}: delete of {k}, which does not exist (offset {})",
                        record.offset
                    );
                    replay.changes += 1;
                }
                other => bail!("{topic}: unexpected op {other}"),
            }
        }
        Ok(replay)
    }

    /// Compares with `sql`'s `(key, v)` rows; `text_keys`: the keys are JSON strings in the
    /// records (numbers otherwise).
    async fn assert_equals_source(
        &self,
        admin: &mut Conn,
        sql: &str,
        text_keys: bool,
        what: &str,
    ) -> Result<()> {
        let source: Vec<(String, i64)> = admin.query(sql).await?;
        let source: HashMap<String, i64> = source
            .into_iter()
            .map(|(k, v)| {
                let k = if text_keys {
                    serde_json::Value::from(k).to_string()
                } else {
                    k
                };
                (k, v)
            })
            .collect();
        ensure!(
            source.len() == self.rows.len(),
            "{what}: {} rows in the source, {} from the records",
            source.len(),
            self.rows.len()
        );
        for (k, v) in &source {
            ensure!(
                self.rows.get(k) == Some(v),
                "{what}: {k} is v={v} in the source, {:?} from the records",
                self.rows.get(k)
            );
        }
        Ok(())
    }
}

fn snapshot_toml(stack: &Stack, name: &str, db: &str, chunk_rows: usize) -> String {
    capture_toml(
        stack,
        name,
        db,
        "snapshot",
        unique_server_id(),
        &format!(
            "[snapshot]\nparallel_tables = 2\nchunk_rows = {chunk_rows}\ncommit_interval_ms = 200\n"
        ),
    )
}

/// Waits until the capture has committed everything the source has written, after the load.
async fn caught_up(capture: &mut InProcess, admin: &mut Conn) -> Result<()> {
    let end = binlog_end(admin).await?;
    capture
        .wait_committed(&end, Duration::from_secs(180))
        .await?;
    Ok(())
}

async fn verify(stack: &Stack, admin: &mut Conn, name: &str, db: &str) -> Result<(Replay, Replay)> {
    let items = Replay::read(stack, &format!("{name}.{db}.items"), "id")?;
    items
        .assert_equals_source(
            admin,
            &format!("SELECT CAST(id AS CHAR), v FROM `{db}`.items"),
            false,
            "items",
        )
        .await?;
    let tags = Replay::read(stack, &format!("{name}.{db}.tags"), "name")?;
    tags.assert_equals_source(
        admin,
        &format!("SELECT name, v FROM `{db}`.tags"),
        true,
        "tags",
    )
    .await?;
    Ok((items, tags))
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_snapshot_under_load_then_every_change_once_and_target_equal() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("capsnap");
    let (mut admin, db) = create_database(&stack, "cap_snap", &[ITEMS, TAGS, NOTES]).await?;
    let (items, tags) = (20_000, 3_000);
    fill(&mut admin, &db, items, tags).await?;
    let mut target =
        apply_support::create_target_tables(&stack, &db, &[ITEMS, TAGS, NOTES]).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(
        stack.clone(),
        db.clone(),
        items,
        tags,
        stop.clone(),
        7,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut capture = InProcess::start(config(&snapshot_toml(&stack, &name, &db, 500))?);
    let status = capture
        .wait_until("snapshot progress", Duration::from_secs(60), |s| {
            s.snapshot.as_ref().is_some_and(|p| p.rows > 0)
        })
        .await?;
    ensure!(
        matches!(status.state, State::Snapshotting | State::Running),
        "state while snapshotting: {:?}",
        status.state
    );
    let status = capture
        .wait_state(State::Running, Duration::from_secs(120))
        .await?;
    let snapshot = status.snapshot.context("no snapshot status")?;
    ensure!(
        !snapshot.running && snapshot.tables.len() == 3,
        "{snapshot:?}"
    );
    ensure!(snapshot.tables.iter().all(|t| t.done), "{snapshot:?}");
    // Writes keep going for a while after streaming starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let transactions = load.await??;
    caught_up(&mut capture, &mut admin).await?;

    let (items_replay, tags_replay) = verify(&stack, &mut admin, &name, &db).await?;
    let notes = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.notes"))?;
    ensure!(notes.len() == 100, "{} notes records", notes.len());
    eprintln!(
        "snapshot test: {} + {} rows read, {} + {} changes streamed, {transactions} source transactions",
        items_replay.reads, tags_replay.reads, items_replay.changes, tags_replay.changes
    );
    ensure!(
        items_replay.changes > 0 && tags_replay.changes > 0,
        "no changes streamed"
    );

    let apply_name = unique_name("capsnap_apply");
    let apply = apply_support::InProcess::start(apply_support::config(
        &apply_support::apply_toml(&stack, &apply_name, &format!("{name}\\.{db}\\..*"), ""),
    )?);
    wait_equal(
        &mut admin,
        &mut target,
        &db,
        &[("items", "id"), ("tags", "name"), ("notes", "a")],
        true,
        Duration::from_secs(120),
    )
    .await?;
    apply.stop().await?;
    capture.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_the_snapshot_resumes_after_the_last_chunk() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("capsnapkill");
    let (mut admin, db) = create_database(&stack, "cap_snapkill", &[ITEMS, TAGS, NOTES]).await?;
    let (items, tags) = (120_000, 40_000);
    fill(&mut admin, &db, items, tags).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(
        stack.clone(),
        db.clone(),
        items,
        tags,
        stop.clone(),
        11,
    ));
    let mut capture =
        CaptureProcess::spawn(&name, &snapshot_toml(&stack, &name, &db, 1000)).await?;
    // Kill once both big tables are partly read (some chunks committed, others in flight).
    capture
        .wait("both tables partly read", Duration::from_secs(120), |s| {
            s.snapshot.as_ref().is_some_and(|snapshot| {
                snapshot
                    .tables
                    .iter()
                    .filter(|t| t.rows >= 5_000 && !t.done)
                    .count()
                    == 2
            })
        })
        .await?;
    let log_path = capture.log.clone();
    let mut child = capture.child;
    child.start_kill()?;
    child.wait().await?;

    // The restart resumes; a clean in-process run finishes and catches up after the load.
    let mut capture = InProcess::start(config(&snapshot_toml(&stack, &name, &db, 1000))?);
    capture
        .wait_state(State::Running, Duration::from_secs(180))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    load.await??;
    caught_up(&mut capture, &mut admin).await?;
    capture.stop().await?;

    let (items_replay, tags_replay) = verify(&stack, &mut admin, &name, &db).await?;
    // Resumed, not restarted: both tables carry a second segment read after the kill.
    let resumed = read_committed(&stack.kafka_bootstrap, &format!("{name}.offsets"))?
        .iter()
        .filter_map(|r| r.json().ok())
        .any(|p| {
            p["snapshot"]["tables"].as_array().is_some_and(|tables| {
                tables
                    .iter()
                    .filter(|t| t["segments"].as_array().is_some_and(|s| s.len() == 2))
                    .count()
                    == 2
            })
        });
    ensure!(
        resumed,
        "no stored progress shows both tables resumed in a second segment"
    );
    eprintln!(
        "snapshot kill test: {} + {} rows read once each, {} + {} changes streamed; logs {}",
        items_replay.reads,
        tags_replay.reads,
        items_replay.changes,
        tags_replay.changes,
        log_path.display()
    );
    Ok(())
}

/// Rows of the bounded-memory test (`ROWFERRY_SNAPSHOT_ROWS`, 2,000,000 by default).
fn big_table_rows() -> u64 {
    std::env::var("ROWFERRY_SNAPSHOT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_million_row_table_snapshots_in_bounded_memory() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("capsnapbig");
    let (mut admin, db) = create_database(&stack, "cap_snapbig", &[ORDERS]).await?;
    let rows = big_table_rows();
    insert_orders(&mut admin, &db, rows).await?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        "snapshot",
        unique_server_id(),
        "[output]\nformat = \"protobuf\"\n",
    );
    let started = std::time::Instant::now();
    let mut capture = CaptureProcess::spawn(&name, &toml).await?;
    let pid = capture.child.id().context("no pid")?;
    let done = capture
        .wait("the snapshot done", Duration::from_secs(900), |s| {
            s.snapshot.as_ref().is_some_and(|p| !p.running)
        })
        .await?
        .snapshot
        .context("no snapshot status")?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib = peak_rss_kib(pid).context("no VmHWM")?;
    terminate(&mut capture.child, "rowferry-capture").await?;
    delete_topics(
        &stack.kafka_bootstrap,
        &[format!("{name}.{db}.orders"), format!("{name}.offsets")],
    )
    .await?;
    admin.query_drop(format!("DROP DATABASE `{db}`")).await?;
    eprintln!(
        "big snapshot: {} rows in {seconds:.1} s (debug build), peak RSS {:.1} MB",
        done.rows,
        peak_kib as f64 / 1024.0
    );
    ensure!(done.rows == rows, "{} rows delivered of {rows}", done.rows);
    ensure!(
        peak_kib < 150 * 1024,
        "peak RSS {:.1} MB, above 150 MB",
        peak_kib as f64 / 1024.0
    );
    Ok(())
}

/// A capture binary with its gRPC endpoint on a free port.
struct CaptureProcess {
    child: tokio::process::Child,
    client: CaptureControlClient<tonic::transport::Channel>,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    port: u16,
}

impl CaptureProcess {
    /// Writes `toml` (a test configuration, endpoint off) with the endpoint on, and starts it.
    async fn spawn(name: &str, toml: &str) -> Result<Self> {
        let port = free_port()?;
        let toml = toml.replace(
            "grpc_listen = \"\"",
            &format!("grpc_listen = \"127.0.0.1:{port}\""),
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("capture.toml");
        std::fs::write(&config, &toml)?;
        let log = dir.join("capture.log");
        let child = spawn_service(&capture_binary()?, &config, &log)?;
        let client = CaptureControlClient::new(connect(port, || Ok(())).await?);
        Ok(Self {
            child,
            client,
            config,
            log,
            port,
        })
    }

    /// Streams `db` from the binlog end, RUNNING.
    async fn streaming(stack: &Stack, name: &str, db: &str) -> Result<Self> {
        let toml = capture_toml(stack, name, db, "latest", unique_server_id(), "");
        let mut capture = Self::spawn(name, &toml).await?;
        capture.wait_running().await?;
        Ok(capture)
    }

    async fn wait_running(&mut self) -> Result<CaptureStatusPb> {
        self.wait("RUNNING", Duration::from_secs(180), |s| {
            s.state == pb_state(State::Running)
        })
        .await
    }

    /// Starts it again after `terminate`.
    async fn restart(&mut self) -> Result<()> {
        self.child = spawn_service(&capture_binary()?, &self.config, &self.log)?;
        self.client = CaptureControlClient::new(connect(self.port, || Ok(())).await?);
        self.wait_running().await?;
        Ok(())
    }

    async fn status(&mut self) -> Result<CaptureStatusPb> {
        self.client
            .get_status(GetStatusRequest {})
            .await?
            .into_inner()
            .status
            .context("no status")
    }

    /// Polls the status until `done`, failing if the process exits or `timeout` passes.
    async fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&CaptureStatusPb) -> bool,
    ) -> Result<CaptureStatusPb> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            if let Some(exit) = self.child.try_wait()? {
                bail!("capture exited: {exit}; see {}", self.log.display());
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "capture did not reach {what}: {status:?}; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn snapshot(
        &mut self,
        tables: &[String],
        action: SnapshotAction,
        chunk_rows: u32,
    ) -> Result<CaptureStatusPb, tonic::Status> {
        self.client
            .snapshot(SnapshotRequest {
                tables: tables.to_vec(),
                action: action as i32,
                chunk_rows,
            })
            .await?
            .into_inner()
            .status
            .ok_or_else(|| tonic::Status::internal("no status"))
    }

    /// Waits until the committed position reaches the source's binlog end now.
    async fn caught_up(&mut self, admin: &mut Conn) -> Result<()> {
        let end = binlog_end(admin).await?;
        self.wait("the binlog end", Duration::from_secs(180), |s| {
            s.committed.as_ref().is_some_and(|p| {
                rowferry_shared::position::BinlogFilePosition::new(p.file.clone(), p.pos)
                    .compare(&end)
                    .is_ok_and(|o| o.is_ge())
            })
        })
        .await?;
        Ok(())
    }
}

fn pb_state(state: State) -> i32 {
    rowferry_shared::control::state_to_proto(state) as i32
}

fn incremental_running(s: &CaptureStatusPb) -> bool {
    s.snapshot
        .as_ref()
        .is_some_and(|p| p.incremental && p.running)
}

fn incremental_done(s: &CaptureStatusPb) -> bool {
    s.snapshot
        .as_ref()
        .is_some_and(|p| p.incremental && !p.running)
}

/// Copies `db.items` of the source into the target (same table there).
async fn copy_items(admin: &mut Conn, target: &mut Conn, db: &str) -> Result<()> {
    let rows: Vec<(i64, i64, Option<String>)> = admin
        .query(format!("SELECT id, v, note FROM `{db}`.items"))
        .await?;
    for chunk in rows.chunks(2000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|(id, v, note)| match note {
                Some(note) => format!("({id},{v},'{}')", note.replace('\'', "''")),
                None => format!("({id},{v},NULL)"),
            })
            .collect();
        target
            .query_drop(format!(
                "INSERT INTO `{db}`.items VALUES {}",
                values.join(",")
            ))
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_snapshot_under_load_repairs_a_diverged_target() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("capincr");
    let (mut admin, db) = create_database(&stack, "cap_incr", &[ITEMS, TAGS, NOTES]).await?;
    let (items, tags) = (20_000, 1_000);
    fill(&mut admin, &db, items, tags).await?;
    let mut target = apply_support::create_target_tables(&stack, &db, &[ITEMS]).await?;
    copy_items(&mut admin, &mut target, &db).await?;
    // The target drifts: changed values, lost rows.
    target
        .query_drop(format!(
            "UPDATE `{db}`.items SET v = v + 1000, note = 'drifted' WHERE id % 7 = 0"
        ))
        .await?;
    target
        .query_drop(format!("DELETE FROM `{db}`.items WHERE id % 11 = 0"))
        .await?;

    let mut capture = CaptureProcess::streaming(&stack, &name, &db).await?;
    let apply =
        apply_support::InProcess::start(apply_support::config(&apply_support::apply_toml(
            &stack,
            &unique_name("capincr_apply"),
            &format!("{name}\\.{db}\\.items"),
            "",
        ))?);
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(
        stack.clone(),
        db.clone(),
        items,
        tags,
        stop.clone(),
        23,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let table = format!("{db}.items");
    capture
        .snapshot(std::slice::from_ref(&table), SnapshotAction::Start, 500)
        .await?;
    let status = capture
        .wait(
            "the incremental snapshot done",
            Duration::from_secs(180),
            incremental_done,
        )
        .await?;
    let snapshot = status.snapshot.context("no snapshot")?;
    ensure!(snapshot.rows >= items * 9 / 10, "{snapshot:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let transactions = load.await??;
    capture.caught_up(&mut admin).await?;

    let replay = Replay::read_incremental(&stack, &format!("{name}.{db}.items"), "id")?;
    replay
        .assert_equals_source(
            &mut admin,
            &format!("SELECT CAST(id AS CHAR), v FROM `{db}`.items"),
            false,
            "items",
        )
        .await?;
    wait_equal(
        &mut admin,
        &mut target,
        &db,
        &[("items", "id")],
        true,
        Duration::from_secs(120),
    )
    .await?;
    eprintln!(
        "incremental snapshot test: {} rows read, {} changes streamed, {transactions} source transactions",
        replay.reads, replay.changes
    );
    apply.stop().await?;
    terminate(&mut capture.child, "rowferry-capture").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_snapshot_pauses_survives_a_restart_resumes_and_cancels() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("capincr2");
    let (mut admin, db) = create_database(&stack, "cap_incr2", &[ITEMS, TAGS, NOTES]).await?;
    let items = 30_000u64;
    fill(&mut admin, &db, items, 10).await?;
    let mut capture = CaptureProcess::streaming(&stack, &name, &db).await?;
    let table = format!("{db}.items");

    // Requests that cannot be served are refused with the reason.
    let refused = capture
        .snapshot(&[], SnapshotAction::Pause, 0)
        .await
        .err()
        .context("pause without a snapshot was accepted")?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused.message().contains("no incremental snapshot"),
        "{refused:?}"
    );
    let refused = capture
        .snapshot(&[format!("{db}.nokey")], SnapshotAction::Start, 0)
        .await
        .err()
        .context("a missing table was accepted")?;
    ensure!(
        refused.code() == tonic::Code::InvalidArgument && refused.message().contains("nokey"),
        "{refused:?}"
    );
    let refused = capture
        .snapshot(&[format!("{db}.notes")], SnapshotAction::Start, 0)
        .await
        .err()
        .context("a table without a key was accepted")?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused.message().contains("no primary key"),
        "{refused:?}"
    );

    capture
        .snapshot(std::slice::from_ref(&table), SnapshotAction::Start, 200)
        .await?;
    capture
        .wait("2,000 rows", Duration::from_secs(180), |s| {
            s.snapshot
                .as_ref()
                .is_some_and(|p| p.incremental && p.rows >= 2_000)
        })
        .await?;
    capture.snapshot(&[], SnapshotAction::Pause, 0).await?;
    let paused = capture
        .wait("paused", Duration::from_secs(180), |s| {
            s.snapshot.as_ref().is_some_and(|p| p.paused)
        })
        .await?;
    let rows_at_pause = paused.snapshot.as_ref().map_or(0, |p| p.rows);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = capture.status().await?;
    ensure!(
        still.snapshot.as_ref().map(|p| p.rows) == Some(rows_at_pause),
        "rows moved while paused: {rows_at_pause} then {:?}",
        still.snapshot
    );
    ensure!(
        rows_at_pause < items,
        "the snapshot finished before the pause"
    );

    // The pause and the progress survive a restart.
    terminate(&mut capture.child, "rowferry-capture").await?;
    capture.restart().await?;
    let after = capture.status().await?;
    let snapshot = after
        .snapshot
        .context("no snapshot status after the restart")?;
    ensure!(
        snapshot.incremental && snapshot.paused && snapshot.rows == rows_at_pause,
        "after the restart: {snapshot:?} (paused at {rows_at_pause} rows)"
    );
    capture.snapshot(&[], SnapshotAction::Resume, 0).await?;
    capture
        .wait(
            "the snapshot done",
            Duration::from_secs(180),
            incremental_done,
        )
        .await?;
    capture.caught_up(&mut admin).await?;

    // Every row read exactly once across the pause and the restart.
    let records = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.items"))?;
    let mut reads: HashMap<String, usize> = HashMap::new();
    for record in &records {
        let value = record.json()?;
        if value["payload"]["op"] == "r" {
            ensure!(
                value["payload"]["source"]["snapshot"] == "incremental",
                "{value}"
            );
            *reads
                .entry(value["payload"]["after"]["id"].to_string())
                .or_default() += 1;
        }
    }
    let twice = reads.values().filter(|n| **n > 1).count();
    ensure!(
        reads.len() as u64 == items && twice == 0,
        "{} rows read, {twice} of them twice, of {items}",
        reads.len()
    );

    // Cancel drops a running snapshot.
    capture
        .snapshot(std::slice::from_ref(&table), SnapshotAction::Start, 100)
        .await?;
    capture.snapshot(&[], SnapshotAction::Cancel, 0).await?;
    capture
        .wait("cancelled", Duration::from_secs(180), |s| {
            !incremental_running(s)
        })
        .await?;
    terminate(&mut capture.child, "rowferry-capture").await?;
    Ok(())
}

/// Updates random rows among ids 1..=`rows` as fast as one connection can, until `stop`.
async fn hot_updates(
    stack: Stack,
    db: String,
    rows: u64,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Result<u64> {
    let mut conn = Conn::new(stack.source_admin_opts()?).await?;
    let mut rng = Lcg(seed);
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = 1 + rng.next(rows);
        conn.query_drop(format!("UPDATE `{db}`.items SET v = v + 1 WHERE id = {id}"))
            .await?;
        done += 1;
    }
    Ok(done)
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_snapshot_never_publishes_a_row_older_than_a_streamed_change() -> Result<()> {
    // Every row is hot: three writers update the 300 rows while the table is re-read 15
    // times. A chunk published before streaming reached its watermark, or one keeping a row
    // changed after its read, puts a stale `r` after a streamed update (publishing at once
    // instead of at the watermark fails this within seconds).
    let stack = Stack::from_env()?;
    let name = unique_name("capincr3");
    let (mut admin, db) = create_database(&stack, "cap_incr3", &[ITEMS, TAGS, NOTES]).await?;
    let rows = 300u64;
    fill(&mut admin, &db, rows, 10).await?;
    let mut capture = CaptureProcess::streaming(&stack, &name, &db).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(hot_updates(
                stack.clone(),
                db.clone(),
                rows,
                stop.clone(),
                31 + i,
            ))
        })
        .collect();
    let table = format!("{db}.items");
    for _ in 0..15 {
        capture
            .snapshot(std::slice::from_ref(&table), SnapshotAction::Start, 1000)
            .await?;
        capture
            .wait(
                "the incremental snapshot done",
                Duration::from_secs(180),
                incremental_done,
            )
            .await?;
    }
    stop.store(true, Ordering::Relaxed);
    let mut updates = 0;
    for writer in writers {
        updates += writer.await??;
    }
    capture.caught_up(&mut admin).await?;
    let replay = Replay::read_with(&stack, &format!("{name}.{db}.items"), "id", true, true)?;
    replay
        .assert_equals_source(
            &mut admin,
            &format!("SELECT CAST(id AS CHAR), v FROM `{db}`.items"),
            false,
            "items",
        )
        .await?;
    eprintln!(
        "hot-row incremental snapshots: {} rows read, {} changes streamed, {updates} updates",
        replay.reads, replay.changes
    );
    terminate(&mut capture.child, "rowferry-capture").await?;
    Ok(())
}
