//! Transactional mode: each source transaction reaches the target atomically. Transfers
//! between accounts keep the total constant in the source; a reader polling the target the
//! whole time must never see another total (half a transfer), although the batches are
//! capped far below the transactions' sizes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::apply::{self, InProcess, apply_toml, target_conn, wait_equal};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::{Lcg, Stack, unique_name};

const ACCOUNTS: i64 = 20;
const TOTAL: i64 = ACCOUNTS * 1000;

async fn transfers(stack: Stack, db: String, count: u32) -> Result<()> {
    let mut conn = Conn::new(stack.source_admin_opts()?).await?;
    conn.query_drop(format!("USE `{db}`")).await?;
    let mut rng = Lcg(42);
    for i in 0..count {
        // Every tenth transaction touches every account; the others 2 to 6 of them.
        let touched = if i % 10 == 0 {
            ACCOUNTS as u64
        } else {
            2 + rng.next(5)
        };
        let mut statements = vec!["BEGIN".to_owned()];
        let mut moved = 0;
        for k in 1..touched {
            let amount = 1 + rng.next(50) as i64;
            statements.push(format!(
                "UPDATE accounts SET balance = balance - {amount} WHERE id = {k}"
            ));
            moved += amount;
        }
        statements.push(format!(
            "UPDATE accounts SET balance = balance + {moved} WHERE id = {touched}"
        ));
        statements.push("COMMIT".to_owned());
        conn.query_drop(statements.join(";")).await?;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    Ok(())
}

/// Polls the target until `stop`; returns (observations, the first inconsistent one).
async fn watch_totals(
    stack: Stack,
    db: String,
    stop: Arc<AtomicBool>,
) -> Result<(u64, Option<String>)> {
    let mut conn = target_conn(&stack).await?;
    let mut seen = 0;
    while !stop.load(Ordering::Relaxed) {
        let row: Option<(i64, Option<i64>)> = conn
            .query_first(format!(
                "SELECT COUNT(*), SUM(balance) FROM `{db}`.accounts"
            ))
            .await
            .unwrap_or(None);
        if let Some((rows, sum)) = row {
            seen += 1;
            let consistent =
                (rows == 0 && sum.is_none()) || (rows == ACCOUNTS && sum == Some(TOTAL));
            if !consistent {
                return Ok((seen, Some(format!("{rows} rows, total {sum:?}"))));
            }
        }
    }
    Ok((seen, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_never_sees_half_a_source_transaction() -> Result<()> {
    let stack = Stack::from_env()?;
    let table = "accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)";
    let (mut source, db) = create_database(&stack, "txmode", &[table]).await?;
    let mut target = apply::create_target_tables(&stack, &db, &[table]).await?;
    let start = binlog_end(&mut source).await?;
    let values: Vec<String> = (1..=ACCOUNTS).map(|id| format!("({id}, 1000)")).collect();
    source
        .query_drop(format!(
            "INSERT INTO `{db}`.accounts VALUES {}",
            values.join(",")
        ))
        .await?;
    let name = unique_name("txmode");
    let capture = capture::start_at(&stack, &name, &db, &start, "")?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_totals(stack.clone(), db.clone(), stop.clone()));
    let mut apply = InProcess::start(apply::config(&apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\.accounts"),
        "[apply]\ntransactional = true\n[batch]\nmax_rows = 3\nlinger_ms = 1\n",
    ))?);
    transfers(stack.clone(), db.clone(), 300).await?;
    let equal = wait_equal(
        &mut source,
        &mut target,
        &db,
        &[("accounts", "id")],
        true,
        Duration::from_secs(90),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let (seen, broken) = watcher.await??;
    let status = apply.status.borrow().clone();
    apply
        .wait_until("running", Duration::from_secs(1), |s| {
            s.state != rowferry_apply::status::State::Failed
        })
        .await?;
    apply.stop().await?;
    capture.stop().await?;
    equal?;
    ensure!(
        broken.is_none(),
        "the reader saw half a transaction: {broken:?} ({seen} reads)"
    );
    ensure!(seen > 50, "too few reads to mean anything: {seen}");
    ensure!(
        status.target_transactions < status.records_applied,
        "transactions were batched: {status:?}"
    );
    eprintln!("transactional mode: {seen} consistent reads, {status:?}");
    Ok(())
}
