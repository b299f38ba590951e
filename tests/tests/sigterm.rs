//! SIGTERM under load, several times, for both binaries: each time the process finishes the
//! work in flight, commits and exits 0, and the next start continues exactly where it
//! stopped — nothing lost, nothing twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::apply::{
    COUNTERS, apply_binary, apply_toml, counters_load, create_counting_target, create_topics,
    wait_counted,
};
use rowferry_tests::capture::{
    self, assert_exactly_once, binlog_end, capture_binary, capture_toml, count_by, create_database,
};
use rowferry_tests::control::{spawn_service, terminate};
use rowferry_tests::{Stack, unique_name, unique_server_id};

const TERMS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capture_stopped_by_sigterm_under_load_continues_exactly() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) =
        create_database(&stack, "capterm", &["t (id BIGINT PRIMARY KEY)"]).await?;
    let start = binlog_end(&mut admin).await?;
    let name = unique_name("capterm");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("capture.toml");
    std::fs::write(
        &config,
        capture_toml(
            &stack,
            &name,
            &db,
            &start.to_string(),
            unique_server_id(),
            "",
        ),
    )?;
    let log = dir.join("capture.log");

    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, inserted, db) = (stop.clone(), inserted.clone(), db.clone());
        let mut conn = Conn::new(stack.source_admin_opts()?).await?;
        tokio::spawn(async move {
            let mut next = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<String> = (next..next + 20).map(|i| format!("({i})")).collect();
                conn.query_drop(format!("INSERT INTO `{db}`.t VALUES {}", values.join(",")))
                    .await?;
                next += 20;
                inserted.store(next - 1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<(), anyhow::Error>(())
        })
    };
    let binary = capture_binary()?;
    for round in 0..TERMS {
        let mut child = spawn_service(&binary, &config, &log)?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ensure!(
            child.try_wait()?.is_none(),
            "capture exited by itself; see {}",
            log.display()
        );
        terminate(&mut child, &format!("capture (round {round})"))
            .await
            .with_context(|| format!("see {}", log.display()))?;
    }
    stop.store(true, Ordering::Relaxed);
    load.await??;
    let rows = inserted.load(Ordering::Relaxed);

    // A last run catches up; every row is in Kafka exactly once.
    let mut child = spawn_service(&binary, &config, &log)?;
    let topic = format!("{name}.{db}.t");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let counts = count_by(&stack, &topic, "id")?;
        if counts.len() as u64 >= rows {
            assert_exactly_once(&counts, 1..=rows)?;
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} of {rows} rows after the last start; see {}",
            counts.len(),
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    terminate(&mut child, "capture (last)").await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_stopped_by_sigterm_under_load_continues_exactly() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "applyterm", &[COUNTERS]).await?;
    let mut target = create_counting_target(&stack, &db).await?;
    let name = unique_name("applyterm");
    create_topics(&stack, &[format!("{name}.{db}.counters")], 2).await?;
    let start = binlog_end(&mut source).await?;
    let capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        "[output]\nformat = \"protobuf\"\n",
    )?;
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("apply.toml");
    std::fs::write(
        &config,
        apply_toml(
            &stack,
            &name,
            &format!("{name}\\.{db}\\.counters"),
            "[batch]\nmax_rows = 200\nlinger_ms = 20\n",
        )
        .replace(
            "[kafka.properties]",
            &format!("[kafka.properties]\n\"group.instance.id\" = \"{name}-1\""),
        ),
    )?;
    let log = dir.join("apply.log");
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(counters_load(stack.clone(), db.clone(), stop.clone(), 11));
    let binary = apply_binary()?;
    for round in 0..TERMS {
        let mut child = spawn_service(&binary, &config, &log)?;
        tokio::time::sleep(Duration::from_millis(2000)).await;
        ensure!(
            child.try_wait()?.is_none(),
            "apply exited by itself; see {}",
            log.display()
        );
        terminate(&mut child, &format!("apply (round {round})"))
            .await
            .with_context(|| format!("see {}", log.display()))?;
    }
    stop.store(true, Ordering::Relaxed);
    load.await??;
    let mut child = spawn_service(&binary, &config, &log)?;
    wait_counted(
        &mut source,
        &mut target,
        &db,
        Duration::from_secs(120),
        || Ok(()),
    )
    .await
    .with_context(|| format!("see {}", log.display()))?;
    terminate(&mut child, "apply (last)").await?;
    capture.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
