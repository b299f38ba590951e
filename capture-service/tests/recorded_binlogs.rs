//! MySQL 5.6–9.x behaviour, checked on binlog files recorded by real servers (no MySQL server
//! can run here). The files are read in place from `../shared/fixtures/mysql-binlogs/`.

use std::path::PathBuf;

use rowferry_capture::binlog::charset::CollationTable;
use rowferry_capture::binlog::decoder::RowDecoder;
use rowferry_capture::binlog::events::{SourceEvent, classify, verify_checksum};
use rowferry_capture::binlog::file::BinlogFileReader;
use rowferry_shared::event::{RowChange, TableSchema};

fn fixtures() -> Option<PathBuf> {
    // Cargo sets CARGO_MANIFEST_DIR when it runs the test; the compile-time value would point
    // at whichever checkout first compiled this binary.
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let dir = PathBuf::from(manifest).join("../../shared/fixtures/mysql-binlogs");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

/// Everything a recording yields.
#[derive(Debug, Default)]
struct Outcome {
    server_version: String,
    gtids: Vec<String>,
    statements: Vec<String>,
    changes: Vec<(std::sync::Arc<TableSchema>, RowChange)>,
    payloads: usize,
    ignored: Vec<u8>,
    error: Option<String>,
}

fn read_all(name: &str) -> Option<Outcome> {
    let path = fixtures()?.join(name);
    let bytes = std::fs::read(&path).ok()?;
    Some(read_bytes(name, bytes, true))
}

/// Reads binlog bytes through the capture decoder; `check_crc` off lets corrupt bodies reach
/// the decoders themselves.
fn read_bytes(name: &str, bytes: Vec<u8>, check_crc: bool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut reader = match BinlogFileReader::from_bytes(name.to_owned(), bytes) {
        Ok(reader) => reader,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let mut decoder = RowDecoder::new(CollationTable::default()).allow_unnamed_columns();
    loop {
        let event = match reader.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                outcome.error = Some(e.to_string());
                break;
            }
        };
        let result = (|| -> Result<(), String> {
            if check_crc && !event.from_payload {
                verify_checksum(&event.event, event.position).map_err(|e| e.to_string())?;
            }
            match classify(&event.event, reader.fde()).map_err(|e| e.to_string())? {
                SourceEvent::FormatDescription { server_version } => {
                    outcome.server_version = server_version
                }
                SourceEvent::Gtid { gtid, .. } => outcome.gtids.push(gtid.to_string()),
                SourceEvent::Statement { sql, .. } => outcome.statements.push(sql),
                SourceEvent::TableMap(tme) => {
                    decoder.table_map(&tme).map_err(|e| e.to_string())?;
                }
                SourceEvent::Rows { table_id, body, .. } => {
                    let (map, changes) =
                        decoder.rows(table_id, &body).map_err(|e| e.to_string())?;
                    for change in changes {
                        outcome.changes.push((map.schema.clone(), change));
                    }
                }
                SourceEvent::TransactionPayload { .. } => outcome.payloads += 1,
                SourceEvent::Ignored { type_code } => outcome.ignored.push(type_code),
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = result {
            outcome.error = Some(format!("at {}: {e}", event.position));
            break;
        }
    }
    outcome
}

fn recordings() -> Vec<String> {
    let Some(dir) = fixtures() else {
        return Vec::new();
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("LICENSE") && !n.ends_with(".md"))
        .collect();
    names.sort();
    names
}

fn must(name: &str) -> Outcome {
    match read_all(name) {
        Some(outcome) => outcome,
        None => panic!("{name} could not be read"),
    }
}

fn values(outcome: &Outcome) -> Vec<String> {
    outcome
        .changes
        .iter()
        .map(|(schema, change)| format!("{} {:?}", schema.id, change))
        .collect()
}

#[test]
fn every_recording_reads_to_its_end_or_to_a_clear_error() {
    let expected_errors = [
        ("binlog_truncated_event.000001", "truncated event header"),
        (
            "binlog_truncated_prev_gtid_event.000001",
            "truncated event header",
        ),
        ("corrupt-relay-bin.000624", "corrupt binlog"),
        // Recorded with binlog_row_image=MINIMAL: refused with the setting to change.
        ("json.binlog.000001", "binlog_row_image is not FULL"),
        (
            "minimal_row_metadata.000001",
            "binlog_row_image is not FULL",
        ),
        (
            "rpl_unfiltered_hidden_gcol.000001",
            "binlog_row_image is not FULL",
        ),
        ("update-full-row.binlog", "binlog_row_image is not FULL"),
        ("update-partial-row.binlog", "binlog_row_image is not FULL"),
        ("write-full-row.binlog", "binlog_row_image is not FULL"),
        ("write-partial-row.binlog", "binlog_row_image is not FULL"),
    ];
    let names = recordings();
    for name in &names {
        let outcome = std::panic::catch_unwind(|| must(name))
            .unwrap_or_else(|_| panic!("{name}: reading panicked"));
        match expected_errors.iter().find(|(n, _)| n == name) {
            Some((_, message)) => {
                let error = outcome.error.unwrap_or_default();
                assert!(
                    error.contains(message),
                    "{name}: expected {message:?}, got {error:?}"
                );
            }
            None => assert_eq!(outcome.error, None, "{name}"),
        }
    }
}

#[test]
fn truncating_a_recording_anywhere_gives_an_error_never_a_panic() {
    for name in [
        "mysql-enum-string-set.000001",
        "transaction_compression.000001",
        "mariadb-bin.000001",
    ] {
        let Some(bytes) = fixtures().and_then(|d| std::fs::read(d.join(name)).ok()) else {
            return;
        };
        let whole = read_bytes(name, bytes.clone(), true);
        assert_eq!(whole.error, None, "{name} reads whole");
        for len in 4..bytes.len() {
            let cut = bytes[..len].to_vec();
            let outcome = std::panic::catch_unwind(|| read_bytes(name, cut, true))
                .unwrap_or_else(|_| panic!("{name} cut at {len} panicked"));
            // A cut on an event boundary is a shorter, valid file; anywhere else it is an error.
            if outcome.error.is_none() {
                assert!(outcome.changes.len() <= whole.changes.len());
            }
        }
    }
}

#[test]
fn corrupt_bytes_fail_the_checksum_or_decode_cleanly() {
    let name = "mysql-enum-string-set.000001";
    let Some(bytes) = fixtures().and_then(|d| std::fs::read(d.join(name)).ok()) else {
        return;
    };
    let mut caught_by_crc = 0;
    for at in 4..bytes.len() {
        let mut corrupt = bytes.clone();
        corrupt[at] ^= 0x5a;
        let checked = std::panic::catch_unwind(|| read_bytes(name, corrupt.clone(), true))
            .unwrap_or_else(|_| panic!("byte {at} flipped: panicked"));
        if checked
            .error
            .as_deref()
            .is_some_and(|e| e.contains("CRC32"))
        {
            caught_by_crc += 1;
        }
        // Without the checksum the decoders themselves see the damage: still no panic.
        std::panic::catch_unwind(|| read_bytes(name, corrupt, false))
            .unwrap_or_else(|_| panic!("byte {at} flipped, CRC off: panicked"));
    }
    assert!(
        caught_by_crc > bytes.len() / 2,
        "only {caught_by_crc} of {} flips caught by CRC32",
        bytes.len()
    );
}

#[test]
fn mysql8_row_values_decode_exactly() {
    if fixtures().is_none() {
        return;
    }
    let invisible = must("binlog-invisible-columns.000001");
    assert_eq!(
        values(&invisible),
        [
            "mysql.t1 Insert { after: [UInt(1), UInt(2), Int(-3), Text(\"4\"), Bytes([5]), UInt(6000000000)] }",
            "mysql.t1 Insert { after: [Null, Null, Int(-33), Text(\"44\"), Bytes([85]), Null] }",
            "mysql.t1 Update { before: [Null, Null, Int(-33), Text(\"44\"), Bytes([85]), Null], after: [UInt(111), UInt(222), Int(-333), Text(\"444\"), Bytes([85]), Null] }",
        ]
    );
    let names: Vec<_> = invisible.changes[0]
        .0
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["f1", "f2", "f3", "f4", "f5", "f6"],
        "full metadata names the columns"
    );

    let enum_set = must("mysql-enum-string-set.000001");
    let (schema, change) = &enum_set.changes[1];
    assert_eq!(
        schema
            .columns
            .iter()
            .map(|c| c.column_type.to_string())
            .collect::<Vec<_>>(),
        [
            "char(128)",
            "varchar(300)",
            "enum('var1','variant2','foo')",
            "set('one','two','three','four')",
            "text"
        ]
    );
    let after = change.after().cloned().unwrap_or_default();
    assert_eq!(
        after[2],
        rowferry_shared::event::Value::Enum("variant2".into())
    );
    assert_eq!(
        after[3],
        rowferry_shared::event::Value::Set(vec!["two".into(), "four".into()])
    );

    let bits = must("mysql_type_bit.000001");
    assert_eq!(
        values(&bits),
        ["mysql.foo Insert { after: [Bit([4]), Text(\"foo\"), Bit([32])] }"]
    );

    let time = must("time_issue.000001");
    assert_eq!(
        values(&time),
        [
            "noria.t Insert { after: [Time(Time { negative: true, hours: 507, minutes: 48, seconds: 27, micros: 0 })] }"
        ]
    );

    // DECIMAL, DATE, DATETIME and TIME inside JSON are "opaque" binary values.
    let opaque = must("json-opaque.binlog");
    let json: Vec<String> = opaque
        .changes
        .iter()
        .filter_map(
            |(_, change)| match change.after().and_then(|row| row.first()) {
                Some(rowferry_shared::event::Value::Json(text)) => Some(text.clone()),
                _ => None,
            },
        )
        .collect();
    assert_eq!(
        json,
        [
            r#"{"a":"base64:type15:VQ=="}"#,
            r#"{"b":"2012-03-18"}"#,
            r#"{"c":"2012-03-18 11:30:45.000000"}"#,
            r#"{"c":"87:31:46.654321"}"#,
            r#"{"d":123.456}"#,
            r#"{"e":9.00}"#,
            r#"{"e":[0,1,true,false]}"#,
            r#"{"e":null}"#,
        ]
    );
}

#[test]
fn compressed_transaction_payloads_are_expanded() {
    if fixtures().is_none() {
        return;
    }
    let outcome = must("transaction_compression.000001");
    assert_eq!(outcome.payloads, 1);
    assert_eq!(values(&outcome), ["test.tb1 Insert { after: [Int(1)] }"]);
}

#[test]
fn gtids_of_every_flavor_are_read() {
    if fixtures().is_none() {
        return;
    }
    let tagged = must("binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(tagged.gtids.len(), 1);
    assert!(
        tagged.gtids[0].matches(':').count() == 2,
        "uuid:tag:gno, got {:?}",
        tagged.gtids
    );
    let mariadb = must("mariadb-bin.000001");
    assert!(mariadb.server_version.contains("MariaDB"));
    assert_eq!(mariadb.gtids.len(), 2);
    assert!(
        mariadb.gtids.iter().all(|g| g.split('-').count() == 3),
        "{:?}",
        mariadb.gtids
    );
    let classic = must("binlog_transaction_with_GTID.000001");
    assert_eq!(classic.gtids.len(), 3);
}
