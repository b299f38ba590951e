//! Round trips: events encoded in every format decode back to what they were, except where
//! Debezium's JSON is lossy, and those exceptions are asserted one by one.

use anyhow::Context as _;
use serde_json::Value as Json;

use super::*;
use crate::codec::tests::{
    TypeCase, column, date, datetime, event, every_type, every_type_table, item, items, options,
    table,
};
use crate::codec::{BigintUnsignedMode, CodecOptions, EncodedRecord, Encoder, ValueFormat};
use crate::event::{
    ChangeEvent, ColumnType, RowChange, RowKey, SharedTableSchema, SnapshotMarker, TableSchema,
    TransactionInfo, Value,
};
use crate::position::Flavor;

const WITH_SCHEMAS: ValueFormat = ValueFormat::DebeziumJson { schemas: true };
const PAYLOAD_ONLY: ValueFormat = ValueFormat::DebeziumJson { schemas: false };

fn transaction() -> TransactionInfo {
    TransactionInfo {
        id: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23".to_owned(),
        total_order: 3,
        data_collection_order: 2,
    }
}

fn encode_with(
    format: ValueFormat,
    options: CodecOptions,
    event: &ChangeEvent,
) -> anyhow::Result<EncodedRecord> {
    Ok(Encoder::new(format, options).encode(event)?)
}

fn encode(format: ValueFormat, event: &ChangeEvent) -> anyhow::Result<EncodedRecord> {
    encode_with(format, options(), event)
}

fn decode(
    format: ValueFormat,
    record: &EncodedRecord,
    schema: &TableSchema,
) -> anyhow::Result<DecodedChange> {
    let key = record.key.as_deref();
    match format {
        WITH_SCHEMAS => decode_debezium_json(key, &record.value),
        PAYLOAD_ONLY => decode_debezium_payload(key, &record.value, schema),
        ValueFormat::Protobuf => decode_protobuf_change(key, &record.value),
    }
    .with_context(|| format!("{format}"))
}

/// Insert, update, delete (in a transaction) and a snapshot read of one every-type row.
fn every_type_events(schema: &SharedTableSchema, row: &[Value]) -> Vec<ChangeEvent> {
    let mut changes = vec![
        RowChange::Insert {
            after: row.to_vec(),
        },
        RowChange::Update {
            before: row.to_vec(),
            after: row.to_vec(),
        },
        RowChange::Delete {
            before: row.to_vec(),
        },
    ]
    .into_iter()
    .map(|change| ChangeEvent {
        transaction: Some(transaction()),
        ..event(schema, change)
    })
    .collect::<Vec<_>>();
    let mut read = event(
        schema,
        RowChange::Read {
            after: row.to_vec(),
        },
    );
    read.source.snapshot = SnapshotMarker::Last;
    read.source.gtid = None;
    read.source.server_id = 0;
    changes.push(read);
    changes
}

/// What a value comes back as from Debezium JSON: the documented lossy cases, else itself.
fn expected_from_json(case: &TypeCase, with_schema: bool, read: bool) -> Value {
    let epoch = date(1970, 1, 1);
    match (case.name, &case.value) {
        // Zero and impossible dates: null in nullable columns, the epoch otherwise.
        ("c_date_zero_null" | "c_datetime_zero_null", _) => Value::Null,
        ("c_date_zero", _) => Value::Date(epoch),
        ("c_datetime_zero", _) => Value::DateTime(datetime(epoch, 0, 0, 0, 0)),
        // Debezium reads YEAR 0000 as 1900.
        ("c_year_zero", _) => Value::Year(1900),
        // BINARY(4) comes back padded, as MySQL returns it.
        ("c_binary", _) => Value::Bytes(vec![1, 2, 0, 0]),
        // A snapshot read (JDBC) has no zero TIMESTAMP: null in a nullable column.
        ("c_timestamp_zero", _) if read => Value::Null,
        // The Connect schema has no signedness: BIGINT UNSIGNED above i64::MAX comes back
        // negative (apply reinterprets it by the target column type), smaller ones as Int.
        (_, Value::UInt(v)) if with_schema => Value::Int(*v as i64),
        (_, value) => value.clone(),
    }
}

fn assert_row(format: ValueFormat, cases: &[TypeCase], decoded: &[Value], read: bool) {
    assert_eq!(decoded.len(), cases.len(), "{format}");
    for (case, value) in cases.iter().zip(decoded) {
        let expected = match format {
            ValueFormat::Protobuf => case.value.clone(),
            _ => expected_from_json(case, format == WITH_SCHEMAS, read),
        };
        assert_eq!(value, &expected, "{format}: {}", case.name);
    }
}

#[test]
fn every_column_type_round_trips_in_every_format() -> anyhow::Result<()> {
    let cases = every_type();
    let schema = every_type_table(&cases);
    let row: Vec<Value> = cases.iter().map(|c| c.value.clone()).collect();
    for format in [WITH_SCHEMAS, PAYLOAD_ONLY, ValueFormat::Protobuf] {
        for original in every_type_events(&schema, &row) {
            let decoded = decode(format, &encode(format, &original)?, &schema)?;
            let op = original.change.op();
            assert_eq!(decoded.table, schema.id, "{format} {op}");
            assert_eq!(decoded.change.op(), op, "{format}");
            let read = op == "r";
            if let Some(before) = decoded.change.before() {
                assert_row(format, &cases, before, read);
            }
            if let Some(after) = decoded.change.after() {
                assert_row(format, &cases, after, read);
            }
            assert_eq!(
                decoded.change.before().is_some(),
                original.change.before().is_some()
            );
            assert_eq!(
                decoded.change.after().is_some(),
                original.change.after().is_some()
            );
            let names: Vec<&str> = decoded.columns.iter().map(|c| c.name.as_str()).collect();
            let expected: Vec<&str> = cases.iter().map(|c| c.name).collect();
            assert_eq!(names, expected, "{format}");
            assert_eq!(*decoded.key_columns, ["c_int"], "{format}");
            assert_eq!(decoded.key_indexes(), Some(vec![6]), "{format}");
            assert_eq!(decoded.source, original.source, "{format} {op}");
            assert_eq!(decoded.transaction, original.transaction, "{format} {op}");
            assert_eq!(decoded.ts_us, original.ts_us, "{format} {op}");
        }
    }
    Ok(())
}

/// The schema-caching decoder gives exactly what the one-shot decoder gives, for every record
/// of a table (the second and later records reuse the cached schema) and for tombstones.
#[test]
fn the_caching_json_decoder_matches_the_one_shot_decoder() -> anyhow::Result<()> {
    let cases = every_type();
    let schema = every_type_table(&cases);
    let row: Vec<Value> = cases.iter().map(|c| c.value.clone()).collect();
    let mut decoder = DebeziumJsonDecoder::new();
    for _ in 0..2 {
        for original in every_type_events(&schema, &row) {
            let record = encode(WITH_SCHEMAS, &original)?;
            let once = decode_debezium_json(record.key.as_deref(), &record.value)?;
            let cached = decoder.decode(record.key.as_deref(), &record.value)?;
            assert_eq!(cached, once);
        }
    }
    assert!(decoder.decode(None, b"").is_err_and(|e| e.is_tombstone()));
    assert!(
        decoder
            .decode(None, b" null ")
            .is_err_and(|e| e.is_tombstone())
    );
    assert!(
        decoder
            .decode(None, br#"{"schema":{},"payload":null}"#)
            .is_err_and(|e| e.is_tombstone())
    );
    assert!(decoder.decode(None, b"{\"payload\":{}}").is_err());
    assert!(decoder.decode(None, b"\xff\x00").is_err());
    Ok(())
}

/// The schema-caching protobuf decoder gives what the one-shot decoder gives, shares one
/// column description among the records of a schema, takes key columns from a key that names
/// others than the schema's primary key, and refuses a row whose column names do not match.
#[test]
fn the_caching_protobuf_decoder_matches_the_one_shot_decoder() -> anyhow::Result<()> {
    use crate::pb::event::v1 as pb;
    use bytes::Bytes;
    use prost::Message as _;

    let cases = every_type();
    let schema = every_type_table(&cases);
    let row: Vec<Value> = cases.iter().map(|c| c.value.clone()).collect();
    let mut decoder = ProtobufDecoder::new();
    let mut first_columns: Option<std::sync::Arc<[DecodedColumn]>> = None;
    for _ in 0..2 {
        for original in every_type_events(&schema, &row) {
            let record = encode(ValueFormat::Protobuf, &original)?;
            let once = decode_protobuf_change(record.key.as_deref(), &record.value)?;
            let key = record.key.clone().map(Bytes::from);
            let cached = decoder.decode(key.as_ref(), &Bytes::from(record.value.clone()))?;
            assert_eq!(cached, once);
            let first = first_columns.get_or_insert_with(|| cached.columns.clone());
            assert!(std::sync::Arc::ptr_eq(first, &cached.columns));
        }
    }

    let record = encode(
        ValueFormat::Protobuf,
        &event(&schema, RowChange::Insert { after: row }),
    )?;
    let value = Bytes::from(record.value.clone());
    let other_key = pb::ChangeKey {
        columns: vec![pb::Column {
            name: "c_varchar".to_owned(),
            value: None,
        }],
    };
    let decoded = decoder.decode(Some(&Bytes::from(other_key.encode_to_vec())), &value)?;
    assert_eq!(*decoded.key_columns, ["c_varchar"]);

    let mut renamed = pb::ChangeEvent::decode(&record.value[..])?;
    let after = renamed.after.as_mut().context("no after image")?;
    after.columns[1].name = "not_a_column".to_owned();
    let error = decoder
        .decode(None, &Bytes::from(renamed.encode_to_vec()))
        .err()
        .context("a renamed column decoded")?
        .to_string();
    assert!(error.contains("not_a_column"), "{error}");
    assert!(error.contains("where the schema has"), "{error}");

    let mut schemaless = pb::ChangeEvent::decode(&record.value[..])?;
    schemaless.schema = None;
    let error = decoder
        .decode(None, &Bytes::from(schemaless.encode_to_vec()))
        .err()
        .context("a record without schema decoded")?
        .to_string();
    assert!(error.contains("no table `schema`"), "{error}");
    assert!(
        decoder
            .decode(None, &Bytes::new())
            .is_err_and(|e| e.is_tombstone())
    );
    Ok(())
}

#[test]
fn column_kinds_and_types_are_reported() -> anyhow::Result<()> {
    let cases = every_type();
    let schema = every_type_table(&cases);
    let row: Vec<Value> = cases.iter().map(|c| c.value.clone()).collect();
    let original = event(&schema, RowChange::Insert { after: row });
    let kind = |decoded: &DecodedChange, name: &str| {
        decoded
            .columns
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .with_context(|| format!("no column `{name}`"))
    };
    for format in [WITH_SCHEMAS, PAYLOAD_ONLY, ValueFormat::Protobuf] {
        let decoded = decode(format, &encode(format, &original)?, &schema)?;
        for (name, expected) in [
            ("c_bigint_u", ColumnKind::Integer),
            ("c_decimal_neg", ColumnKind::Decimal),
            ("c_float_one", ColumnKind::Float),
            ("c_double", ColumnKind::Double),
            ("c_date", ColumnKind::Date),
            ("c_time", ColumnKind::Time),
            ("c_datetime3", ColumnKind::DateTime),
            ("c_timestamp", ColumnKind::Timestamp),
            ("c_year", ColumnKind::Year),
            ("c_text", ColumnKind::Text),
            ("c_blob", ColumnKind::Bytes),
            ("c_enum", ColumnKind::Enum),
            ("c_set", ColumnKind::Set),
            ("c_bit1", ColumnKind::Bit),
            ("c_bit10", ColumnKind::Bit),
            ("c_json", ColumnKind::Json),
            ("c_geometry", ColumnKind::Geometry),
            ("c_vector", ColumnKind::Vector),
        ] {
            assert_eq!(kind(&decoded, name)?.kind, expected, "{format}: {name}");
        }
        assert!(kind(&decoded, "c_null")?.optional, "{format}");
        assert!(!kind(&decoded, "c_int")?.optional, "{format}");
        let sql_type = kind(&decoded, "c_decimal_neg")?.sql_type;
        match format {
            WITH_SCHEMAS => assert_eq!(sql_type, None),
            _ => assert_eq!(sql_type.as_deref(), Some("decimal(10,2)"), "{format}"),
        }
    }
    Ok(())
}

#[test]
fn bigint_unsigned_is_exact_with_a_column_type() -> anyhow::Result<()> {
    let schema = table(
        "counters",
        vec![
            column("id", ColumnType::BigInt { unsigned: true }, false),
            column("n", ColumnType::BigInt { unsigned: true }, true),
        ],
        RowKey::Primary(vec![0]),
    );
    let row = vec![Value::UInt(u64::MAX), Value::UInt(1 << 63)];
    let original = event(&schema, RowChange::Insert { after: row.clone() });
    let after = |decoded: DecodedChange| decoded.change.after().cloned().context("no after row");

    // With the Connect schema alone, `long` mode values above i64::MAX come back negative.
    let record = encode(WITH_SCHEMAS, &original)?;
    assert_eq!(
        after(decode_debezium_json(record.key.as_deref(), &record.value)?)?,
        [Value::Int(-1), Value::Int(i64::MIN)]
    );
    // Given the column types (payload only), they are exact in both modes.
    for mode in [BigintUnsignedMode::Long, BigintUnsignedMode::Precise] {
        let options = CodecOptions {
            bigint_unsigned: mode,
            ..options()
        };
        let record = encode_with(PAYLOAD_ONLY, options.clone(), &original)?;
        let decoded = decode_debezium_payload(record.key.as_deref(), &record.value, &schema);
        assert_eq!(after(decoded?)?, row, "{mode:?}");
        // So are they with a propagated source type, and in precise mode as Decimal text.
        let options = CodecOptions {
            propagate_source_types: true,
            ..options
        };
        let record = encode_with(WITH_SCHEMAS, options, &original)?;
        let decoded = decode_debezium_json(record.key.as_deref(), &record.value)?;
        assert_eq!(after(decoded)?, row, "{mode:?} propagated");
    }
    let precise = CodecOptions {
        bigint_unsigned: BigintUnsignedMode::Precise,
        ..options()
    };
    let record = encode_with(WITH_SCHEMAS, precise, &original)?;
    assert_eq!(
        after(decode_debezium_json(None, &record.value)?)?,
        [
            Value::Decimal(u64::MAX.to_string()),
            Value::Decimal((1u64 << 63).to_string())
        ]
    );
    Ok(())
}

#[test]
fn empty_json_comes_back_null_or_an_empty_object() -> anyhow::Result<()> {
    let schema = table(
        "docs",
        vec![
            column("id", ColumnType::Int { unsigned: false }, false),
            column("maybe", ColumnType::Json, true),
            column("always", ColumnType::Json, false),
        ],
        RowKey::Primary(vec![0]),
    );
    let row = vec![
        Value::Int(1),
        Value::Json(String::new()),
        Value::Json(String::new()),
    ];
    let original = event(&schema, RowChange::Insert { after: row.clone() });
    for format in [WITH_SCHEMAS, PAYLOAD_ONLY] {
        let decoded = decode(format, &encode(format, &original)?, &schema)?;
        assert_eq!(
            decoded.change.after().context("no after row")?,
            &[Value::Int(1), Value::Null, Value::Json("{}".to_owned())],
            "{format}"
        );
    }
    let decoded = decode(
        ValueFormat::Protobuf,
        &encode(ValueFormat::Protobuf, &original)?,
        &schema,
    )?;
    assert_eq!(decoded.change.after().context("no after row")?, &row);
    Ok(())
}

#[test]
fn keyless_tables_decode_without_key_columns() -> anyhow::Result<()> {
    let schema = table(
        "log",
        vec![column("line", ColumnType::VarChar { length: 10 }, true)],
        RowKey::None,
    );
    let original = event(
        &schema,
        RowChange::Insert {
            after: vec![Value::Text("x".to_owned())],
        },
    );
    for format in [WITH_SCHEMAS, PAYLOAD_ONLY, ValueFormat::Protobuf] {
        let record = encode(format, &original)?;
        assert_eq!(record.key, None);
        let decoded = decode(format, &record, &schema)?;
        assert!(decoded.key_columns.is_empty(), "{format}");
    }
    Ok(())
}

/// An insert as Debezium 3.0's MySQL connector emits it through Kafka Connect's
/// `JsonConverter` (the tutorial's `inventory.customers`), written by hand.
const DEBEZIUM_CUSTOMERS_KEY: &str = concat!(
    r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"#,
    r#""optional":false,"name":"dbserver1.inventory.customers.Key"},"payload":{"id":1005}}"#,
);

const DEBEZIUM_CUSTOMERS_VALUE: &str = concat!(
    r#"{"schema":{"type":"struct","fields":["#,
    r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"before"},"#,
    r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"after"},"#,
    r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":true,"field":"table"},{"type":"int64","optional":false,"field":"server_id"},{"type":"string","optional":true,"field":"gtid"},{"type":"string","optional":false,"field":"file"},{"type":"int64","optional":false,"field":"pos"},{"type":"int32","optional":false,"field":"row"},{"type":"int64","optional":true,"field":"thread"},{"type":"string","optional":true,"field":"query"}],"optional":false,"name":"io.debezium.connector.mysql.Source","version":1,"field":"source"},"#,
    r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"},"#,
    r#"{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"#,
    r#""optional":false,"name":"dbserver1.inventory.customers.Envelope","version":2},"#,
    r#""payload":{"before":null,"after":{"id":1005,"first_name":"Sarah","last_name":"Thompson","email":"kitt@acme.com"},"#,
    r#""source":{"version":"3.0.0.Final","connector":"mysql","name":"dbserver1","ts_ms":1486500577000,"snapshot":"false","db":"inventory","sequence":null,"ts_us":1486500577000000,"ts_ns":1486500577000000000,"table":"customers","server_id":223344,"gtid":null,"file":"mysql-bin.000003","pos":364,"row":0,"thread":3,"query":null},"#,
    r#""transaction":null,"op":"c","ts_ms":1486500577691,"ts_us":1486500577691547,"ts_ns":1486500577691547000}}"#,
);

#[test]
fn decodes_a_debezium_envelope_field_by_field() -> anyhow::Result<()> {
    let decoded = decode_debezium_json(
        Some(DEBEZIUM_CUSTOMERS_KEY.as_bytes()),
        DEBEZIUM_CUSTOMERS_VALUE.as_bytes(),
    )?;
    assert_eq!(decoded.table.db, "inventory");
    assert_eq!(decoded.table.table, "customers");
    assert_eq!(
        decoded.change,
        RowChange::Insert {
            after: vec![
                Value::Int(1005),
                Value::Text("Sarah".to_owned()),
                Value::Text("Thompson".to_owned()),
                Value::Text("kitt@acme.com".to_owned()),
            ]
        }
    );
    let columns: Vec<(&str, ColumnKind, bool)> = decoded
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind, c.optional))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", ColumnKind::Integer, false),
            ("first_name", ColumnKind::Text, false),
            ("last_name", ColumnKind::Text, false),
            ("email", ColumnKind::Text, false),
        ]
    );
    assert!(decoded.columns.iter().all(|c| c.sql_type.is_none()));
    assert_eq!(*decoded.key_columns, ["id"]);
    let source = &decoded.source;
    assert_eq!(source.flavor, Flavor::MySql);
    assert_eq!(source.name, "dbserver1");
    assert_eq!(source.ts_us, 1_486_500_577_000_000);
    assert_eq!(source.snapshot, SnapshotMarker::No);
    assert_eq!(source.server_id, 223_344);
    assert_eq!(source.gtid, None);
    assert_eq!(source.file, "mysql-bin.000003");
    assert_eq!(source.pos, 364);
    assert_eq!(source.row, 0);
    assert_eq!(source.thread, Some(3));
    assert_eq!(source.query, None);
    assert_eq!(decoded.transaction, None);
    assert_eq!(decoded.ts_us, 1_486_500_577_691_547);
    Ok(())
}

#[test]
fn tombstones_are_a_distinct_error() -> anyhow::Result<()> {
    let schema = items();
    for result in [
        decode_debezium_json(Some(b"{}"), b""),
        decode_debezium_json(None, b"null"),
        decode_debezium_json(None, br#"{"schema":null,"payload":null}"#),
        decode_debezium_payload(None, b"", &schema),
        decode_debezium_payload(None, b" null ", &schema),
        decode_protobuf_change(None, b""),
    ] {
        assert!(result.err().context("expected an error")?.is_tombstone());
    }
    assert!(
        !decode_debezium_json(None, b"{}")
            .err()
            .context("expected an error")?
            .is_tombstone()
    );
    Ok(())
}

/// The JSON of `record`'s value with `edit` applied, encoded again.
fn edited(
    record: &EncodedRecord,
    edit: impl FnOnce(&mut Json) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    let mut json: Json = serde_json::from_slice(&record.value)?;
    edit(&mut json)?;
    Ok(serde_json::to_vec(&json)?)
}

#[test]
fn errors_name_the_field_and_the_problem() -> anyhow::Result<()> {
    let cases = every_type();
    let schema = every_type_table(&cases);
    let row: Vec<Value> = cases.iter().map(|c| c.value.clone()).collect();
    let record = encode(
        WITH_SCHEMAS,
        &event(&schema, RowChange::Insert { after: row }),
    )?;
    let index = cases
        .iter()
        .position(|c| c.name == "c_decimal_neg")
        .context("no column c_decimal_neg")?;
    let error = |value: Vec<u8>| {
        decode_debezium_json(None, &value)
            .err()
            .map(|e| e.to_string())
            .context("expected a decode error")
    };

    let no_scale = edited(&record, |json| {
        let parameters = &mut json["schema"]["fields"][1]["fields"][index]["parameters"];
        parameters
            .as_object_mut()
            .context("parameters is not an object")?
            .remove("scale");
        Ok(())
    })?;
    assert_eq!(
        error(no_scale)?,
        "field `c_decimal_neg`: Decimal without `scale` parameter"
    );
    let not_base64 = edited(&record, |json| {
        json["payload"]["after"]["c_decimal_neg"] = Json::from("#?");
        Ok(())
    })?;
    assert_eq!(error(not_base64)?, "field `c_decimal_neg`: invalid base64");
    let wrong_kind = edited(&record, |json| {
        json["payload"]["after"]["c_date"] = Json::from("2024-03-15");
        Ok(())
    })?;
    assert_eq!(
        error(wrong_kind)?,
        "field `c_date`: expected a 64-bit integer, found a string"
    );
    let bad_instant = edited(&record, |json| {
        json["payload"]["after"]["c_timestamp"] = Json::from("yesterday");
        Ok(())
    })?;
    assert_eq!(
        error(bad_instant)?,
        "field `c_timestamp`: \"yesterday\" is not an ISO-8601 instant"
    );
    let missing = edited(&record, |json| {
        json["payload"]["after"]
            .as_object_mut()
            .context("after is not an object")?
            .remove("c_year");
        Ok(())
    })?;
    assert_eq!(
        error(missing)?,
        "field `c_year`: missing from the `after` row"
    );
    let bad_op = edited(&record, |json| {
        json["payload"]["op"] = Json::from("x");
        Ok(())
    })?;
    assert!(error(bad_op)?.contains("unknown op \"x\""));

    // Payload only: a field the table does not have.
    let payload = encode(
        PAYLOAD_ONLY,
        &event(
            &items(),
            RowChange::Insert {
                after: item(1, "a"),
            },
        ),
    )?;
    let extra = edited(&payload, |json| {
        json["after"]["colour"] = Json::from("red");
        Ok(())
    })?;
    assert_eq!(
        decode_debezium_payload(None, &extra, &items())
            .err()
            .context("expected a decode error")?
            .to_string(),
        "field `colour`: not a column of shop.items; the table schema does not match the record"
    );
    Ok(())
}

/// A small deterministic generator (xorshift), so that the garbage is the same every run.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_and_truncated_records_are_errors_not_panics() -> anyhow::Result<()> {
    let cases = every_type();
    let schema = every_type_table(&cases);
    let row: Vec<Value> = cases.iter().map(|c| c.value.clone()).collect();
    let original = event(
        &schema,
        RowChange::Update {
            before: row.clone(),
            after: row,
        },
    );
    let json = encode(WITH_SCHEMAS, &original)?;
    let payload = encode(PAYLOAD_ONLY, &original)?;
    let protobuf = encode(ValueFormat::Protobuf, &original)?;

    // Every truncation of JSON is invalid JSON (checked near both ends and at a stride in
    // between, to keep the test quick).
    let ends =
        |len: usize| (0..len).filter(move |&end| end < 64 || end + 64 > len || end % 61 == 0);
    for end in ends(json.value.len()) {
        assert!(
            decode_debezium_json(None, &json.value[..end]).is_err(),
            "{end}"
        );
    }
    for end in ends(payload.value.len()) {
        assert!(decode_debezium_payload(None, &payload.value[..end], &schema).is_err());
    }
    // Truncated or bit-flipped protobuf may still parse; it must not panic.
    for end in 0..protobuf.value.len() {
        let _ = decode_protobuf_change(protobuf.key.as_deref(), &protobuf.value[..end]);
    }
    let mut garbage = Garbage(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let mut flipped = protobuf.value.clone();
        let at = garbage.next() as usize % flipped.len();
        flipped[at] ^= 1 << (garbage.next() % 8);
        let _ = decode_protobuf_change(None, &flipped);
    }
    // Random bytes, as key and value.
    for _ in 0..2000 {
        let len = garbage.next() as usize % 300;
        let bytes = garbage.bytes(len);
        assert!(decode_debezium_json(Some(&bytes), &bytes).is_err());
        assert!(decode_debezium_payload(Some(&bytes), &bytes, &schema).is_err());
        let _ = decode_protobuf_change(Some(&bytes), &bytes);
    }
    // Valid JSON of the wrong shape in every column.
    let junk = [
        Json::from("x"),
        Json::from("AAAA"),
        Json::from(-1),
        Json::from(u64::MAX),
        Json::from(1.5e300),
        Json::from(true),
        serde_json::json!({}),
        serde_json::json!([1, "a"]),
        serde_json::json!({"wkb": 1}),
    ];
    for case in &cases {
        for value in &junk {
            for (record, after) in [(&json, "/payload/after"), (&payload, "/after")] {
                let bytes = edited(record, |j| {
                    *j.pointer_mut(after)
                        .with_context(|| format!("no {after}"))?
                        .get_mut(case.name)
                        .with_context(|| format!("no field {}", case.name))? = value.clone();
                    Ok(())
                })?;
                let _ = decode_debezium_json(None, &bytes);
                let _ = decode_debezium_payload(None, &bytes, &schema);
            }
        }
    }
    // Envelopes missing each part.
    for part in ["schema", "payload"] {
        let bytes = edited(&json, |j| {
            j.as_object_mut()
                .context("the record is not an object")?
                .remove(part);
            Ok(())
        })?;
        assert!(decode_debezium_json(None, &bytes).is_err());
    }
    for part in ["op", "source", "before", "after"] {
        let bytes = edited(&json, |j| {
            j["payload"]
                .as_object_mut()
                .context("payload is not an object")?
                .remove(part);
            Ok(())
        })?;
        assert!(decode_debezium_json(None, &bytes).is_err(), "{part}");
    }
    Ok(())
}
