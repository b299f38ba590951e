//! Capture's Seek over gRPC: every kind of position checked against the source, stored, and
//! honoured by the next Start (the right events re-emitted); invalid requests refused with
//! the right code and a message that says what to do.
//!
//! The source writes rows 1–10 of `t`, one transaction each; the binlog position, the GTID
//! position and a time (binlog timestamps are whole seconds) are noted between rows 5 and 6.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::capture::v1 as pb;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_shared::pb::capture::v1::seek_request::Target;
use rowferry_shared::pb::control::v1::{Boundary, State};
use rowferry_shared::position::BinlogFilePosition;
use rowferry_tests::capture::{
    binlog_end, capture_binary, capture_toml, count_by, create_database,
};
use rowferry_tests::control::{connect, free_port, refusal, start_with_control, terminate};
use rowferry_tests::{Stack, unique_name, unique_server_id};
use tonic::transport::Channel;

type Client = CaptureControlClient<Channel>;

async fn seek(client: &mut Client, target: Target, validate_only: bool) -> Result<pb::Position> {
    client
        .seek(pb::SeekRequest {
            target: Some(target),
            validate_only,
        })
        .await?
        .into_inner()
        .position
        .context("no position in the response")
}

async fn status(client: &mut Client) -> Result<pb::CaptureStatus> {
    client
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .status
        .context("no status")
}

/// Starts the capture and waits until it has committed up to `end`, then stops it.
async fn run_to(client: &mut Client, end: &BinlogFilePosition) -> Result<()> {
    client.start(pb::StartRequest {}).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(client).await?;
        let reached = s.state == State::Running as i32
            && s.committed.as_ref().is_some_and(|p| {
                BinlogFilePosition::new(p.file.clone(), p.pos)
                    .compare(end)
                    .is_ok_and(|o| o.is_ge())
            });
        if reached {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "never reached {end}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.stop(pb::StopRequest { timeout: None }).await?;
    Ok(())
}

fn counts(ids: impl IntoIterator<Item = u64>, times: usize) -> BTreeMap<u64, usize> {
    ids.into_iter().map(|id| (id, times)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_by_every_kind_of_position_reemits_exactly_what_follows() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) =
        create_database(&stack, "capseek", &["t (id INT PRIMARY KEY, v INT)"]).await?;
    let start = binlog_end(&mut admin).await?;
    for id in 1..=5 {
        admin
            .query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, {id})"))
            .await?;
    }
    let after_five = binlog_end(&mut admin).await?;
    let gtids_five: String = admin
        .query_first("SELECT @@gtid_binlog_pos")
        .await?
        .context("no gtid_binlog_pos")?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mid = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for id in 6..=10 {
        admin
            .query_drop(format!("INSERT INTO `{db}`.t VALUES ({id}, {id})"))
            .await?;
    }
    let end = binlog_end(&mut admin).await?;

    let name = unique_name("capseek");
    let topic = format!("{name}.{db}.t");
    let port = free_port()?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    );
    let (mut child, log_path) = start_with_control(
        &capture_binary()?,
        &name,
        "capture",
        &toml,
        port,
        "autostart = false",
    )?;
    let logs = || format!("see {}", log_path.display());
    let mut client = Client::new(connect(port, || Ok(())).await.with_context(logs)?);

    // Invalid requests: the code and a message naming the problem.
    let beyond = BinlogFilePosition::new(end.file.clone(), end.pos + 1_000_000);
    let cases: Vec<(Option<Target>, tonic::Code, &str)> = vec![
        (None, tonic::Code::InvalidArgument, "set one of"),
        (
            Some(Target::GtidSet("not a gtid".into())),
            tonic::Code::InvalidArgument,
            "gtid_set",
        ),
        (
            Some(Target::GtidSet(
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into(),
            )),
            tonic::Code::InvalidArgument,
            "source's syntax",
        ),
        (
            Some(Target::GtidSet("0-1-999999999".into())),
            tonic::Code::OutOfRange,
            "ahead of what the source has executed",
        ),
        (
            Some(Target::BinlogPosition(pb::BinlogPosition {
                file: "no-such-bin.000001".into(),
                position: 4,
            })),
            tonic::Code::InvalidArgument,
            "not on the source",
        ),
        (
            Some(Target::BinlogPosition(pb::BinlogPosition {
                file: beyond.file.clone(),
                position: beyond.pos,
            })),
            tonic::Code::OutOfRange,
            "beyond the end",
        ),
        (
            Some(Target::BinlogPosition(pb::BinlogPosition {
                file: String::new(),
                position: 4,
            })),
            tonic::Code::InvalidArgument,
            "file is empty",
        ),
        (
            Some(Target::Boundary(Boundary::Unspecified as i32)),
            tonic::Code::InvalidArgument,
            "BOUNDARY_LATEST",
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

    // What each kind of position resolves to (validate_only moves nothing).
    let by_time = seek(
        &mut client,
        Target::Timestamp(rowferry_shared::pb::wkt::Timestamp {
            seconds: mid as i64,
            nanos: 0,
        }),
        true,
    )
    .await?;
    ensure!(
        (by_time.file.as_str(), by_time.pos) == (after_five.file.as_str(), after_five.pos),
        "time {mid} resolved to {by_time:?}, expected {after_five}"
    );
    let by_gtid = seek(&mut client, Target::GtidSet(gtids_five.clone()), true).await?;
    ensure!(by_gtid.gtid_set == gtids_five, "{by_gtid:?}");
    let latest = seek(&mut client, Target::Boundary(Boundary::Latest as i32), true).await?;
    ensure!(
        latest.file == end.file && latest.pos >= end.pos,
        "{latest:?}"
    );
    let earliest = seek(
        &mut client,
        Target::Boundary(Boundary::Earliest as i32),
        true,
    )
    .await?;
    ensure!(earliest.pos == 4, "{earliest:?}");
    ensure!(
        status(&mut client).await?.committed.is_none(),
        "validate_only stored a position"
    );

    // A file position: rows 6-10 only.
    let stored = seek(
        &mut client,
        Target::BinlogPosition(pb::BinlogPosition {
            file: after_five.file.clone(),
            position: after_five.pos,
        }),
        false,
    )
    .await?;
    ensure!(stored.pos == after_five.pos, "{stored:?}");
    run_to(&mut client, &end).await.with_context(logs)?;
    let seen = count_by(&stack, &topic, "id")?;
    ensure!(seen == counts(6..=10, 1), "after a file seek: {seen:?}");

    // Refused while running.
    client.start(pb::StartRequest {}).await?;
    let refused = refusal(
        client
            .seek(pb::SeekRequest {
                target: Some(Target::GtidSet(gtids_five.clone())),
                validate_only: false,
            })
            .await,
    )?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused.message().contains("stop or pause"),
        "{refused:?}"
    );
    let refused = refusal(
        client
            .seek(pb::SeekRequest {
                target: Some(Target::Timestamp(rowferry_shared::pb::wkt::Timestamp {
                    seconds: mid as i64,
                    nanos: 0,
                })),
                validate_only: true,
            })
            .await,
    )?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused
                .message()
                .contains("pause or stop the capture first"),
        "{refused:?}"
    );
    client.stop(pb::StopRequest { timeout: None }).await?;

    // A GTID position: rows 6-10 re-emitted.
    seek(&mut client, Target::GtidSet(gtids_five), false).await?;
    run_to(&mut client, &end).await.with_context(logs)?;
    let seen = count_by(&stack, &topic, "id")?;
    ensure!(seen == counts(6..=10, 2), "after a GTID seek: {seen:?}");

    // A time: rows 6-10 once more.
    seek(
        &mut client,
        Target::Timestamp(rowferry_shared::pb::wkt::Timestamp {
            seconds: mid as i64,
            nanos: 0,
        }),
        false,
    )
    .await?;
    run_to(&mut client, &end).await.with_context(logs)?;
    let seen = count_by(&stack, &topic, "id")?;
    ensure!(seen == counts(6..=10, 3), "after a time seek: {seen:?}");

    terminate(&mut child, "capture").await.with_context(logs)?;
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&name));
    Ok(())
}
