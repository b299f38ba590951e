//! Apply's Seek over gRPC: every kind of target resolved against Kafka and stored in the
//! offsets table, the rows that follow checked in the target, and invalid requests refused
//! with the right code and a message that says what to do.
//!
//! The source writes rows 1–10, one transaction each, into a one-partition topic, noting the
//! GTID position and the time after row 5; the records' offsets are read back from Kafka
//! (transaction markers take offsets too).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::apply::v1 as pb;
use rowferry_shared::pb::apply::v1::apply_control_client::ApplyControlClient;
use rowferry_shared::pb::apply::v1::seek_request::Target;
use rowferry_shared::pb::control::v1::{Boundary, State};
use rowferry_tests::apply::{apply_binary, apply_toml, create_target_tables, create_topics};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::control::{connect, free_port, refusal, start_with_control, terminate};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name};
use tonic::transport::Channel;

type Client = ApplyControlClient<Channel>;

const TABLE: &str = "t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)";

async fn seek(client: &mut Client, target: Target, validate_only: bool) -> Result<Vec<i64>> {
    let response = client
        .seek(pb::SeekRequest {
            target: Some(target),
            validate_only,
        })
        .await?
        .into_inner();
    Ok(response.offsets.iter().map(|o| o.offset).collect())
}

async fn wait_state(client: &mut Client, state: State) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = client
            .get_status(pb::GetStatusRequest {})
            .await?
            .into_inner()
            .status
            .context("no status")?;
        if s.state == state as i32 {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not {state:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the target's ids are exactly `want`.
async fn wait_ids(target: &mut Conn, db: &str, want: &[i32]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<i32> = target
            .query(format!("SELECT id FROM `{db}`.t ORDER BY id"))
            .await?;
        if ids == want {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "target ids {ids:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seek_by_every_kind_of_target_reapplies_exactly_what_follows() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "applyseek", &[TABLE]).await?;
    let mut target = create_target_tables(&stack, &db, &[TABLE]).await?;
    let name = unique_name("applyseek");
    let topic = format!("{name}.{db}.t");
    create_topics(&stack, std::slice::from_ref(&topic), 1).await?;
    let start = binlog_end(&mut source).await?;
    let mut capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        "[output]\nformat = \"protobuf\"\n",
    )?;
    for id in 1..=5 {
        source
            .query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'row {id}')"))
            .await?;
    }
    let after_five: String = source
        .query_first("SELECT @@gtid_binlog_pos")
        .await?
        .context("no gtid_binlog_pos")?;
    capture.wait_caught_up(&mut source).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mid = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in 6..=10 {
        source
            .query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, 'row {id}')"))
            .await?;
    }
    capture.wait_caught_up(&mut source).await?;
    let offsets: Vec<i64> = read_committed(&stack.kafka_bootstrap, &topic)?
        .iter()
        .map(|r| r.offset)
        .collect();
    ensure!(offsets.len() == 10, "{} records", offsets.len());
    let row = |id: usize| offsets[id - 1];

    let port = free_port()?;
    let toml = apply_toml(&stack, &name, &format!("{name}\\.{db}\\.t"), "");
    let (mut child, log_path) = start_with_control(
        &apply_binary()?,
        &name,
        "apply",
        &toml,
        port,
        "autostart = false",
    )?;
    let logs = || format!("see {}", log_path.display());
    let channel = connect(port, || Ok(())).await.with_context(logs)?;
    let mut client = Client::new(channel);

    // Invalid requests: the code and a message naming the problem.
    let cases: Vec<(Option<Target>, tonic::Code, &str)> = vec![
        (None, tonic::Code::InvalidArgument, "set one of"),
        (
            Some(Target::SourceGtidSet("not a gtid".into())),
            tonic::Code::InvalidArgument,
            "source_gtid_set",
        ),
        (
            Some(Target::SourceGtidSet(" ".into())),
            tonic::Code::InvalidArgument,
            "BOUNDARY_EARLIEST",
        ),
        (
            Some(Target::Boundary(Boundary::Unspecified as i32)),
            tonic::Code::InvalidArgument,
            "BOUNDARY_LATEST",
        ),
        (
            Some(Target::Offsets(pb::PartitionOffsets {
                offsets: vec![pb::PartitionOffset {
                    topic: topic.clone(),
                    partition: 0,
                    offset: 9999,
                }],
            })),
            tonic::Code::OutOfRange,
            "beyond its end",
        ),
        (
            Some(Target::Offsets(pb::PartitionOffsets {
                offsets: vec![pb::PartitionOffset {
                    topic: topic.clone(),
                    partition: 5,
                    offset: 0,
                }],
            })),
            tonic::Code::InvalidArgument,
            "is not a partition apply consumes",
        ),
        (
            Some(Target::Offsets(pb::PartitionOffsets { offsets: vec![] })),
            tonic::Code::InvalidArgument,
            "at least one",
        ),
    ];
    for (target, code, text) in cases {
        let refused = refusal(
            client
                .seek(pb::SeekRequest {
                    target: target.clone(),
                    validate_only: false,
                })
                .await,
        )?;
        ensure!(
            refused.code() == code && refused.message().contains(text),
            "{target:?}: {refused:?}"
        );
    }

    // What each kind of target resolves to (validate_only moves nothing).
    let gtids = Target::SourceGtidSet(after_five.clone());
    ensure!(
        seek(&mut client, gtids.clone(), true).await? == [row(6)],
        "GTID"
    );
    let at_mid = Target::Timestamp(rowferry_shared::pb::wkt::Timestamp {
        seconds: mid.as_secs() as i64,
        nanos: mid.subsec_nanos() as i32,
    });
    let by_time = seek(&mut client, at_mid.clone(), true).await?;
    ensure!(
        by_time == [row(6)],
        "time: {by_time:?}, offsets {offsets:?}"
    );
    let earliest = Target::Boundary(Boundary::Earliest as i32);
    let latest = Target::Boundary(Boundary::Latest as i32);
    ensure!(seek(&mut client, earliest.clone(), true).await? == [0]);
    let end = seek(&mut client, latest.clone(), true).await?;
    ensure!(
        end.len() == 1 && end[0] > row(10) && end[0] <= row(10) + 2,
        "{end:?}"
    );

    // LATEST: only what comes after is applied.
    ensure!(seek(&mut client, latest, false).await? == end);
    client.start(pb::StartRequest {}).await?;
    wait_state(&mut client, State::Running).await?;
    source
        .query_drop(format!("INSERT INTO `{db}`.t VALUES (11, 'row 11')"))
        .await?;
    wait_ids(&mut target, &db, &[11]).await.with_context(logs)?;

    // Refused while running.
    let refused = refusal(
        client
            .seek(pb::SeekRequest {
                target: Some(earliest.clone()),
                validate_only: false,
            })
            .await,
    )?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition && refused.message().contains("RUNNING"),
        "{refused:?}"
    );

    // A source GTID set (a target restored from a backup taken after row 5), while paused:
    // rows 6–11 come back, 1–5 do not.
    client.pause(pb::PauseRequest { timeout: None }).await?;
    target.query_drop(format!("DELETE FROM `{db}`.t")).await?;
    ensure!(seek(&mut client, gtids, false).await? == [row(6)]);
    wait_state(&mut client, State::Paused).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_ids(&mut target, &db, &[]).await?;
    client.resume(pb::ResumeRequest {}).await?;
    wait_ids(&mut target, &db, &[6, 7, 8, 9, 10, 11])
        .await
        .with_context(logs)?;

    // A time, then explicit offsets, while stopped.
    client.stop(pb::StopRequest { timeout: None }).await?;
    target.query_drop(format!("DELETE FROM `{db}`.t")).await?;
    ensure!(seek(&mut client, at_mid, false).await? == [row(6)]);
    client.start(pb::StartRequest {}).await?;
    wait_ids(&mut target, &db, &[6, 7, 8, 9, 10, 11])
        .await
        .with_context(logs)?;
    client.stop(pb::StopRequest { timeout: None }).await?;
    target.query_drop(format!("DELETE FROM `{db}`.t")).await?;
    let two = Target::Offsets(pb::PartitionOffsets {
        offsets: vec![pb::PartitionOffset {
            topic: topic.clone(),
            partition: 0,
            offset: row(3),
        }],
    });
    ensure!(seek(&mut client, two, false).await? == [row(3)]);
    client.start(pb::StartRequest {}).await?;
    wait_ids(&mut target, &db, &[3, 4, 5, 6, 7, 8, 9, 10, 11])
        .await
        .with_context(logs)?;

    terminate(&mut child, "apply").await.with_context(logs)?;
    capture.stop().await?;
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&name));
    Ok(())
}
