//! Records exactly as Debezium's MySQL connector writes them with Kafka Connect's
//! JsonConverter (`schemas.enable=true`), for tests that feed apply without rowferry-capture.

use std::time::Duration;

use anyhow::{Result, bail};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

/// The table the records describe: `id INT` key, `first_name VARCHAR`, `birth DATE`,
/// `balance DECIMAL(10,2)`, `created TIMESTAMP`, `flag BIT(1)`.
pub const TABLE: &str = "customers (id INT PRIMARY KEY, first_name VARCHAR(255), birth DATE, \
                         balance DECIMAL(10,2), created TIMESTAMP(6) NULL DEFAULT NULL, flag BIT(1))";

/// One row of that table as Debezium writes its values.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Key.
    pub id: i32,
    /// VARCHAR.
    pub first_name: Option<&'static str>,
    /// Days since the epoch (`io.debezium.time.Date`).
    pub birth_days: Option<i32>,
    /// Base64 of the unscaled big-endian integer (Connect `Decimal`, scale 2).
    pub balance_base64: Option<&'static str>,
    /// ISO-8601 UTC (`io.debezium.time.ZonedTimestamp`).
    pub created: Option<&'static str>,
    /// BIT(1) as a boolean.
    pub flag: Option<bool>,
}

impl Customer {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "first_name": self.first_name,
            "birth": self.birth_days,
            "balance": self.balance_base64,
            "created": self.created,
            "flag": self.flag,
        })
    }
}

fn row_schema(server: &str, db: &str, field: &str) -> Value {
    json!({
        "type": "struct",
        "fields": [
            {"type": "int32", "optional": false, "field": "id"},
            {"type": "string", "optional": true, "field": "first_name"},
            {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1, "field": "birth"},
            {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
             "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "balance"},
            {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "version": 1, "field": "created"},
            {"type": "boolean", "optional": true, "field": "flag"}
        ],
        "optional": true,
        "name": format!("{server}.{db}.customers.Value"),
        "field": field
    })
}

fn envelope_schema(server: &str, db: &str) -> Value {
    json!({
        "type": "struct",
        "fields": [
            row_schema(server, db, "before"),
            row_schema(server, db, "after"),
            {"type": "struct", "fields": [
                {"type": "string", "optional": false, "field": "version"},
                {"type": "string", "optional": false, "field": "connector"},
                {"type": "string", "optional": false, "field": "name"},
                {"type": "int64", "optional": false, "field": "ts_ms"},
                {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
                 "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
                 "default": "false", "field": "snapshot"},
                {"type": "string", "optional": false, "field": "db"},
                {"type": "string", "optional": true, "field": "sequence"},
                {"type": "int64", "optional": true, "field": "ts_us"},
                {"type": "int64", "optional": true, "field": "ts_ns"},
                {"type": "string", "optional": true, "field": "table"},
                {"type": "int64", "optional": false, "field": "server_id"},
                {"type": "string", "optional": true, "field": "gtid"},
                {"type": "string", "optional": false, "field": "file"},
                {"type": "int64", "optional": false, "field": "pos"},
                {"type": "int32", "optional": false, "field": "row"},
                {"type": "int64", "optional": true, "field": "thread"},
                {"type": "string", "optional": true, "field": "query"}
            ], "optional": false, "name": "io.debezium.connector.mysql.Source", "version": 1, "field": "source"},
            {"type": "struct", "fields": [
                {"type": "string", "optional": false, "field": "id"},
                {"type": "int64", "optional": false, "field": "total_order"},
                {"type": "int64", "optional": false, "field": "data_collection_order"}
            ], "optional": true, "name": "event.block", "version": 1, "field": "transaction"},
            {"type": "string", "optional": false, "field": "op"},
            {"type": "int64", "optional": true, "field": "ts_ms"},
            {"type": "int64", "optional": true, "field": "ts_us"},
            {"type": "int64", "optional": true, "field": "ts_ns"}
        ],
        "optional": false,
        "name": format!("{server}.{db}.customers.Envelope"),
        "version": 2
    })
}

/// The record key: `{"schema":…,"payload":{"id":…}}`.
pub fn key(server: &str, db: &str, id: i32) -> Vec<u8> {
    json!({
        "schema": {"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}],
                   "optional": false, "name": format!("{server}.{db}.customers.Key")},
        "payload": {"id": id}
    })
    .to_string()
    .into_bytes()
}

/// A change record value: `op` is `c`, `u`, `d` or `r`.
pub fn value(
    server: &str,
    db: &str,
    op: &str,
    before: Option<&Customer>,
    after: Option<&Customer>,
    pos: u64,
) -> Vec<u8> {
    let ts_ms: i64 = 1_732_000_000_000 + pos as i64;
    json!({
        "schema": envelope_schema(server, db),
        "payload": {
            "before": before.map(Customer::json),
            "after": after.map(Customer::json),
            "source": {
                "version": "2.7.3.Final", "connector": "mysql", "name": server,
                "ts_ms": ts_ms, "snapshot": if op == "r" { "true" } else { "false" },
                "db": db, "sequence": null, "ts_us": ts_ms * 1000, "ts_ns": ts_ms * 1_000_000,
                "table": "customers", "server_id": 223344, "gtid": null,
                "file": "mysql-bin.000003", "pos": pos, "row": 0, "thread": 7, "query": null
            },
            "transaction": null,
            "op": op,
            "ts_ms": ts_ms + 5, "ts_us": (ts_ms + 5) * 1000, "ts_ns": (ts_ms + 5) * 1_000_000
        }
    })
    .to_string()
    .into_bytes()
}

/// One record to produce: key, value (`None`: tombstone), headers.
pub type Produced = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(&'static str, Vec<u8>)>,
);

/// Produces `records` to partition 0 of `topic` in order, as Kafka Connect would (no
/// `content-type` header unless given).
pub async fn produce(bootstrap: &str, topic: &str, records: &[Produced]) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()?;
    for (key, value, headers) in records {
        let mut owned = OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(0).headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Err((error, _)) = producer.send(record, Duration::from_secs(10)).await {
            bail!("cannot produce to {topic}: {error}");
        }
    }
    Ok(())
}
