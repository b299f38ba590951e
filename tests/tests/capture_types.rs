//! Every MySQL column type through rowferry-capture: rows of each type family are inserted into
//! the MariaDB source, captured from its binlog, and every field of every record is compared
//! with a literal expectation, in Debezium JSON (with and without schemas) and in protobuf.
//!
//! Expectations are written out by hand — days, microseconds and UTC instants computed
//! independently of rowferry — and Debezium's DECIMAL and byte values are decoded here rather
//! than compared with the encoder's own output. Where MariaDB changes what was inserted, the
//! expectation is what a `SELECT` shows: FLOAT 3.4028235e38 is `f32::MAX`, a DATETIME fraction
//! is truncated (not rounded) to the column's precision, an invalid ENUM value is index 0 (the
//! empty string), and MariaDB's JSON is a LONGTEXT column, so it travels as text.
//!
//! Every table places an UNSIGNED column after the numeric types it tests (FLOAT, DOUBLE,
//! DECIMAL, YEAR, BIT), so that a misread of the TABLE_MAP signedness bitmap shows up as a
//! wrong sign.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::codec::{decode_protobuf, decode_protobuf_key};
use rowferry_shared::pb::event::v1 as pb;
use rowferry_shared::pb::event::v1::value::Kind;
use rowferry_tests::capture::{InProcess, binlog_end, capture_toml, config};
use rowferry_tests::kafka::{Record, read_committed};
use rowferry_tests::{Stack, unique_name, unique_server_id};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// What is inserted and what must come out

/// One column of one row: the SQL literal inserted and the value each format must carry.
#[derive(Debug, Clone)]
struct Cell {
    /// SQL literal in the INSERT.
    sql: String,
    /// The field's value in Debezium JSON.
    json: Json,
    /// The protobuf `Value.kind`; `None` is NULL (a column without a value).
    pb: Option<Kind>,
}

/// An expected Debezium JSON field value.
#[derive(Debug, Clone)]
enum Json {
    /// Exactly this JSON value.
    Is(Value),
    /// A Connect `Decimal`: base64 of the unscaled two's-complement integer, whose value with
    /// the text's scale must be exactly this text.
    Decimal(String),
    /// Base64 of exactly these bytes.
    Bytes(Vec<u8>),
}

/// A row: its key and its other columns in table order.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    /// Inserted with `sql_mode=''` (zero dates, invalid ENUM values).
    lenient: bool,
    cells: Vec<Cell>,
}

/// A test table: `id INT PRIMARY KEY` followed by `columns` (name, SQL type).
struct Table {
    name: &'static str,
    columns: Vec<(&'static str, String)>,
    rows: Vec<Row>,
}

impl Table {
    fn row(&self, id: i64) -> Result<&Row> {
        self.rows
            .iter()
            .find(|r| r.id == id)
            .with_context(|| format!("{} has no row {id}", self.name))
    }
}

fn columns(columns: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    columns
        .iter()
        .map(|(name, ddl)| (*name, (*ddl).to_owned()))
        .collect()
}

fn cell(sql: impl Into<String>, json: Value, pb: Kind) -> Cell {
    Cell {
        sql: sql.into(),
        json: Json::Is(json),
        pb: Some(pb),
    }
}

fn null() -> Cell {
    Cell {
        sql: "NULL".into(),
        json: Json::Is(Value::Null),
        pb: None,
    }
}

fn int(v: i64) -> Cell {
    cell(v.to_string(), json!(v), Kind::Int(v))
}

fn uint(v: u64) -> Cell {
    cell(v.to_string(), json!(v), Kind::Uint(v))
}

fn decimal(text: &str) -> Cell {
    Cell {
        sql: text.into(),
        json: Json::Decimal(text.into()),
        pb: Some(Kind::Decimal(text.into())),
    }
}

fn text(s: &str) -> Cell {
    cell(quote(s), json!(s), Kind::Text(s.into()))
}

fn bytes(sql: impl Into<String>, stored: &[u8]) -> Cell {
    Cell {
        sql: sql.into(),
        json: Json::Bytes(stored.to_vec()),
        pb: Some(Kind::Bytes(stored.to_vec())),
    }
}

/// BIT(n) with n > 1: Debezium writes the bytes little-endian, protobuf big-endian.
fn bits(sql: &str, little_endian: &[u8], big_endian: &[u8]) -> Cell {
    Cell {
        sql: sql.into(),
        json: Json::Bytes(little_endian.to_vec()),
        pb: Some(Kind::Bit(big_endian.to_vec())),
    }
}

fn set(sql: &str, debezium: &str, members: &[&str]) -> Cell {
    cell(
        quote(sql),
        json!(debezium),
        Kind::Set(pb::StringList {
            values: members.iter().map(|m| (*m).to_owned()).collect(),
        }),
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("X'{digits}'")
}

fn row(id: i64, cells: Vec<Cell>) -> Row {
    Row {
        id,
        lenient: false,
        cells,
    }
}

fn lenient_row(id: i64, cells: Vec<Cell>) -> Row {
    Row {
        id,
        lenient: true,
        cells,
    }
}

const ZERO_DATETIME: &str = "0000-00-00 00:00:00";

/// The tables, their rows and what each value must become. Rows are inserted with the session
/// time zone at +05:00: TIMESTAMP values come out 5 hours earlier (UTC), DATETIME as written.
fn tables() -> Vec<Table> {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let datetime_zero = || cell(quote(ZERO_DATETIME), Value::Null, zero(ZERO_DATETIME));
    vec![
        Table {
            name: "ints",
            columns: columns(&[
                ("t", "TINYINT"),
                ("tu", "TINYINT UNSIGNED"),
                ("s", "SMALLINT"),
                ("su", "SMALLINT UNSIGNED"),
                ("m", "MEDIUMINT"),
                ("mu", "MEDIUMINT UNSIGNED"),
                ("i", "INT"),
                ("iu", "INT UNSIGNED"),
                ("b", "BIGINT"),
                ("bu", "BIGINT UNSIGNED"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        int(-128),
                        uint(0),
                        int(-32768),
                        uint(0),
                        int(-8_388_608),
                        uint(0),
                        int(-2_147_483_648),
                        uint(0),
                        int(i64::MIN),
                        uint(0),
                    ],
                ),
                row(
                    2,
                    vec![
                        int(127),
                        uint(255),
                        int(32767),
                        uint(65535),
                        int(8_388_607),
                        uint(16_777_215),
                        int(2_147_483_647),
                        uint(4_294_967_295),
                        int(9_223_372_036_854_775_807),
                        // Debezium's default bigint.unsigned.handling.mode=long: the 64 bits
                        // read as a Java long.
                        cell(
                            "18446744073709551615",
                            json!(-1),
                            Kind::Uint(18_446_744_073_709_551_615),
                        ),
                    ],
                ),
                row(
                    3,
                    vec![
                        int(0),
                        uint(0),
                        int(0),
                        uint(0),
                        int(0),
                        uint(0),
                        int(0),
                        uint(0),
                        int(0),
                        uint(0),
                    ],
                ),
                row(4, vec![null(); 10]),
            ],
        },
        Table {
            name: "decimals",
            columns: columns(&[
                ("d65", "DECIMAL(65,30)"),
                ("d10", "DECIMAL(10,2)"),
                ("d20", "DECIMAL(20,0)"),
                ("d5", "DECIMAL(5,5)"),
                ("u", "INT UNSIGNED"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        decimal(
                            "12345678901234567890123456789012345.678901234567890123456789012345",
                        ),
                        decimal("-12345678.90"),
                        decimal("18446744073709551615"),
                        decimal("-0.12345"),
                        uint(4_294_967_295),
                    ],
                ),
                row(
                    2,
                    vec![
                        decimal(
                            "-99999999999999999999999999999999999.999999999999999999999999999999",
                        ),
                        decimal("0.00"),
                        decimal("-99999999999999999999"),
                        decimal("0.99999"),
                        uint(0),
                    ],
                ),
                row(
                    3,
                    vec![
                        decimal("0.000000000000000000000000000001"),
                        decimal("-0.01"),
                        decimal("0"),
                        decimal("0.00000"),
                        uint(1),
                    ],
                ),
                row(4, vec![null(); 5]),
            ],
        },
        Table {
            name: "floats",
            columns: columns(&[("f", "FLOAT"), ("d", "DOUBLE"), ("u", "SMALLINT UNSIGNED")]),
            rows: vec![
                row(
                    1,
                    vec![
                        cell("1.5", json!(1.5), Kind::Float(1.5)),
                        cell("1.5", json!(1.5), Kind::Double(1.5)),
                        uint(65535),
                    ],
                ),
                row(
                    2,
                    vec![
                        cell("-0.1", json!(-0.1), Kind::Float(-0.1)),
                        cell("-0.1", json!(-0.1), Kind::Double(-0.1)),
                        uint(0),
                    ],
                ),
                // 3.4028235e38 is a little above f32::MAX: strict mode refuses it, and
                // sql_mode='' stores f32::MAX, which Java prints as 3.4028235E38.
                lenient_row(
                    3,
                    vec![
                        cell("3.4028235e38", json!(3.4028235e38), Kind::Float(f32::MAX)),
                        cell(
                            "3.4028235e38",
                            json!(3.4028235e38),
                            Kind::Double(3.4028235e38),
                        ),
                        uint(1),
                    ],
                ),
                row(
                    4,
                    vec![
                        cell("1e-30", json!(1e-30), Kind::Float(1e-30)),
                        cell("1e-300", json!(1e-300), Kind::Double(1e-300)),
                        uint(2),
                    ],
                ),
                row(
                    5,
                    vec![
                        // FLOAT cannot hold 1e-300: MariaDB stores 0.
                        cell("1e-300", json!(0.0), Kind::Float(0.0)),
                        cell("0", json!(0.0), Kind::Double(0.0)),
                        null(),
                    ],
                ),
                row(6, vec![null(), null(), null()]),
            ],
        },
        Table {
            name: "dates",
            columns: columns(&[("d", "DATE NOT NULL"), ("dn", "DATE NULL")]),
            rows: vec![
                row(
                    1,
                    vec![
                        cell("'1000-01-01'", json!(-354_285), Kind::Date(-354_285)),
                        cell("'9999-12-31'", json!(2_932_896), Kind::Date(2_932_896)),
                    ],
                ),
                // Debezium: a zero date is the epoch in a NOT NULL column, null otherwise.
                lenient_row(
                    2,
                    vec![
                        cell("'0000-00-00'", json!(0), zero("0000-00-00")),
                        cell("'0000-00-00'", Value::Null, zero("0000-00-00")),
                    ],
                ),
                row(
                    3,
                    vec![
                        cell("'2024-02-29'", json!(19_782), Kind::Date(19_782)),
                        null(),
                    ],
                ),
                lenient_row(
                    4,
                    vec![
                        cell("'2024-00-10'", json!(0), zero("2024-00-10")),
                        cell("'1970-01-01'", json!(0), Kind::Date(0)),
                    ],
                ),
            ],
        },
        Table {
            name: "times",
            columns: columns(&[
                ("t0", "TIME"),
                ("t1", "TIME(1)"),
                ("t2", "TIME(2)"),
                ("t3", "TIME(3)"),
                ("t6", "TIME(6)"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        time("'-838:59:59'", -3_020_399_000_000),
                        time("'-00:00:01.5'", -1_500_000),
                        time("'-00:00:01.5'", -1_500_000),
                        time("'-00:00:01.5'", -1_500_000),
                        time("'-00:00:00.000001'", -1),
                    ],
                ),
                row(
                    2,
                    vec![
                        time("'838:59:59'", 3_020_399_000_000),
                        time("'838:59:59.9'", 3_020_399_900_000),
                        time("'-838:59:59.99'", -3_020_399_990_000),
                        time("'-00:00:00.001'", -1_000),
                        time("'838:59:59.999999'", 3_020_399_999_999),
                    ],
                ),
                row(
                    3,
                    vec![
                        time("'00:00:00'", 0),
                        time("'-00:00:00.1'", -100_000),
                        time("'-01:02:03.04'", -3_723_040_000),
                        time("'12:34:56.789'", 45_296_789_000),
                        time("'-838:59:59.999999'", -3_020_399_999_999),
                    ],
                ),
                row(4, vec![null(); 5]),
            ],
        },
        Table {
            name: "datetimes",
            columns: columns(&[
                ("dt0", "DATETIME"),
                ("dt3", "DATETIME(3)"),
                ("dt4", "DATETIME(4)"),
                ("dt6", "DATETIME(6)"),
                ("dtn", "DATETIME NOT NULL"),
            ]),
            // DATETIME(0–3): Debezium epoch milliseconds; (4–6): microseconds. Protobuf always
            // microseconds.
            rows: vec![
                row(
                    1,
                    vec![
                        datetime(
                            "'2024-02-29 23:59:59'",
                            1_709_251_199_000,
                            1_709_251_199_000_000,
                        ),
                        datetime(
                            "'2024-02-29 23:59:59.999'",
                            1_709_251_199_999,
                            1_709_251_199_999_000,
                        ),
                        datetime(
                            "'2024-02-29 23:59:59.9999'",
                            1_709_251_199_999_900,
                            1_709_251_199_999_900,
                        ),
                        datetime(
                            "'2024-02-29 23:59:59.999999'",
                            1_709_251_199_999_999,
                            1_709_251_199_999_999,
                        ),
                        // Truncated to the column's whole seconds.
                        datetime(
                            "'2024-02-29 23:59:59.999999'",
                            1_709_251_199_000,
                            1_709_251_199_000_000,
                        ),
                    ],
                ),
                lenient_row(
                    2,
                    vec![
                        datetime_zero(),
                        datetime_zero(),
                        datetime_zero(),
                        datetime_zero(),
                        cell(quote(ZERO_DATETIME), json!(0), zero(ZERO_DATETIME)),
                    ],
                ),
                row(
                    3,
                    vec![
                        datetime(
                            "'1000-01-01 00:00:00'",
                            -30_610_224_000_000,
                            -30_610_224_000_000_000,
                        ),
                        datetime(
                            "'9999-12-31 23:59:59.999'",
                            253_402_300_799_999,
                            253_402_300_799_999_000,
                        ),
                        datetime(
                            "'9999-12-31 23:59:59.9999'",
                            253_402_300_799_999_900,
                            253_402_300_799_999_900,
                        ),
                        datetime(
                            "'9999-12-31 23:59:59.999999'",
                            253_402_300_799_999_999,
                            253_402_300_799_999_999,
                        ),
                        datetime("'1970-01-01 00:00:00'", 0, 0),
                    ],
                ),
                row(
                    4,
                    vec![
                        null(),
                        null(),
                        null(),
                        null(),
                        datetime("'1970-01-01 00:00:01'", 1000, 1_000_000),
                    ],
                ),
            ],
        },
        Table {
            name: "timestamps",
            columns: columns(&[
                ("ts0", "TIMESTAMP NULL DEFAULT NULL"),
                ("ts3", "TIMESTAMP(3) NULL DEFAULT NULL"),
                ("ts6", "TIMESTAMP(6) NULL DEFAULT NULL"),
            ]),
            // Inserted at +05:00; Debezium writes UTC with exactly the column's fractional
            // digits, protobuf UTC microseconds.
            rows: vec![
                row(
                    1,
                    vec![
                        timestamp(
                            "'2024-02-29 23:59:59'",
                            "2024-02-29T18:59:59Z",
                            1_709_233_199_000_000,
                        ),
                        timestamp(
                            "'2024-02-29 23:59:59.12'",
                            "2024-02-29T18:59:59.120Z",
                            1_709_233_199_120_000,
                        ),
                        timestamp(
                            "'2024-02-29 23:59:59.999999'",
                            "2024-02-29T18:59:59.999999Z",
                            1_709_233_199_999_999,
                        ),
                    ],
                ),
                // The zero TIMESTAMP is stored as second 0: Debezium's binlog reader writes the
                // epoch; protobuf keeps it as the zero value.
                lenient_row(
                    2,
                    vec![
                        cell(
                            quote(ZERO_DATETIME),
                            json!("1970-01-01T00:00:00Z"),
                            zero(ZERO_DATETIME),
                        ),
                        cell(
                            quote(ZERO_DATETIME),
                            json!("1970-01-01T00:00:00.000Z"),
                            zero(ZERO_DATETIME),
                        ),
                        cell(
                            quote(ZERO_DATETIME),
                            json!("1970-01-01T00:00:00.000000Z"),
                            zero(ZERO_DATETIME),
                        ),
                    ],
                ),
                row(
                    3,
                    vec![
                        timestamp("'1970-01-01 05:00:01'", "1970-01-01T00:00:01Z", 1_000_000),
                        timestamp(
                            "'2038-01-19 08:14:07.999'",
                            "2038-01-19T03:14:07.999Z",
                            2_147_483_647_999_000,
                        ),
                        timestamp(
                            "'2000-01-01 05:00:00.000001'",
                            "2000-01-01T00:00:00.000001Z",
                            946_684_800_000_001,
                        ),
                    ],
                ),
                row(4, vec![null(), null(), null()]),
            ],
        },
        Table {
            name: "years",
            // YEAR right before an UNSIGNED and a signed column: if YEAR's place in the
            // signedness bitmap were miscounted, `u` would take `s`'s flag and read 255 as -1.
            columns: columns(&[
                ("y", "YEAR NULL"),
                ("u", "TINYINT UNSIGNED"),
                ("s", "TINYINT"),
                ("yn", "YEAR NOT NULL"),
                ("bu", "BIGINT UNSIGNED"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        year("1901", 1901, 1901),
                        uint(255),
                        int(-128),
                        year("2155", 2155, 2155),
                        // 2^63: a negative Java long in Debezium's default mode.
                        cell(
                            "9223372036854775808",
                            json!(i64::MIN),
                            Kind::Uint(9_223_372_036_854_775_808),
                        ),
                    ],
                ),
                // YEAR 0000: Debezium reads the stored byte 0 as 1900; protobuf keeps 0.
                row(
                    2,
                    vec![
                        year("0", 1900, 0),
                        uint(0),
                        int(127),
                        year("0", 1900, 0),
                        uint(1),
                    ],
                ),
                row(
                    3,
                    vec![null(), null(), null(), year("2000", 2000, 2000), null()],
                ),
            ],
        },
        Table {
            name: "texts",
            columns: columns(&[
                ("c", "CHAR(10) CHARACTER SET utf8mb4"),
                ("v", "VARCHAR(50) CHARACTER SET utf8mb4"),
                ("t", "TEXT CHARACTER SET utf8mb4"),
                ("cbig", "CHAR(100) CHARACTER SET utf8mb4"),
                ("vbig", "VARCHAR(100) CHARACTER SET utf8mb4"),
                ("cl", "CHAR(10) CHARACTER SET latin1"),
                ("vl", "VARCHAR(50) CHARACTER SET latin1"),
                ("tl", "TEXT CHARACTER SET latin1"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        text("héllo 😀"),
                        text("Ünïcödé 中文 😀"),
                        text("日本語のテキスト 😀 ñ ß"),
                        text("x😀y"),
                        text(&"😀é".repeat(50)),
                        text("café"),
                        text("é € ÿ"),
                        text("naïve € ÿ Œ ½"),
                    ],
                ),
                row(
                    2,
                    vec![
                        text(""),
                        // VARCHAR keeps trailing spaces; CHAR does not show them.
                        text("trail  "),
                        text(""),
                        cell("'pad  '", json!("pad"), Kind::Text("pad".into())),
                        text("z"),
                        text(""),
                        text(""),
                        text("'quoted' \\ back"),
                    ],
                ),
                row(3, vec![null(); 8]),
            ],
        },
        Table {
            name: "binaries",
            columns: columns(&[
                ("bin", "BINARY(4)"),
                ("vb", "VARBINARY(300)"),
                ("bl", "BLOB"),
                ("tb", "TINYBLOB"),
                ("mb", "MEDIUMBLOB"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        // Shorter than 4 bytes: zero-padded, as a SELECT shows it.
                        bytes("'ab'", b"ab\0\0"),
                        bytes("X'00FF10'", &[0x00, 0xFF, 0x10]),
                        bytes(hex(&all_bytes), &all_bytes),
                        bytes("X''", &[]),
                        bytes("X'0102'", &[1, 2]),
                    ],
                ),
                row(
                    2,
                    vec![
                        bytes("X'00000000'", &[0; 4]),
                        bytes("''", &[]),
                        bytes("X'00'", &[0]),
                        bytes("X'FF00'", &[0xFF, 0x00]),
                        bytes(hex(&all_bytes), &all_bytes),
                    ],
                ),
                row(
                    3,
                    vec![
                        bytes("X'FF'", &[0xFF, 0, 0, 0]),
                        null(),
                        null(),
                        null(),
                        null(),
                    ],
                ),
                row(4, vec![null(); 5]),
            ],
        },
        Table {
            name: "enums",
            columns: columns(&[
                ("e", "ENUM('small','médium','large')"),
                ("s", "SET('red','green','blue','ünï')"),
                ("s10", "SET('a','b','c','d','e','f','g','h','i','j')"),
                ("el", "ENUM('café','naïve','€uro') CHARACTER SET latin1"),
                ("sl", "SET('é','ü','ÿ') CHARACTER SET latin1"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        cell("'médium'", json!("médium"), Kind::Text("médium".into())),
                        set("red,blue", "red,blue", &["red", "blue"]),
                        set("j,a", "a,j", &["a", "j"]),
                        cell("'café'", json!("café"), Kind::Text("café".into())),
                        set("ÿ,é", "é,ÿ", &["é", "ÿ"]),
                    ],
                ),
                // An invalid ENUM value under sql_mode='' is index 0, the empty string.
                lenient_row(
                    2,
                    vec![
                        cell("'zzz'", json!(""), Kind::Text(String::new())),
                        set("", "", &[]),
                        set("", "", &[]),
                        cell("''", json!(""), Kind::Text(String::new())),
                        set("ü", "ü", &["ü"]),
                    ],
                ),
                row(
                    3,
                    vec![
                        cell("'large'", json!("large"), Kind::Text("large".into())),
                        set(
                            "ünï,blue,red,green",
                            "red,green,blue,ünï",
                            &["red", "green", "blue", "ünï"],
                        ),
                        set("i", "i", &["i"]),
                        cell("'€uro'", json!("€uro"), Kind::Text("€uro".into())),
                        set("", "", &[]),
                    ],
                ),
                row(4, vec![null(); 5]),
            ],
        },
        Table {
            name: "wide_enums",
            // More than 255 ENUM members take two bytes per value; 64 SET members eight.
            columns: vec![
                ("e300", format!("ENUM({})", members("m", 300))),
                ("s64", format!("SET({})", members("s", 64))),
            ],
            rows: vec![
                row(
                    1,
                    vec![
                        cell("'m299'", json!("m299"), Kind::Text("m299".into())),
                        set("s63,s0", "s0,s63", &["s0", "s63"]),
                    ],
                ),
                row(
                    2,
                    vec![
                        cell("'m0'", json!("m0"), Kind::Text("m0".into())),
                        set("s62", "s62", &["s62"]),
                    ],
                ),
                lenient_row(
                    3,
                    vec![cell("'nope'", json!(""), Kind::Text(String::new())), null()],
                ),
            ],
        },
        Table {
            name: "bits",
            columns: columns(&[
                ("b1", "BIT(1)"),
                ("b10", "BIT(10)"),
                ("b64", "BIT(64)"),
                ("u", "MEDIUMINT UNSIGNED"),
            ]),
            rows: vec![
                row(
                    1,
                    vec![
                        cell("b'1'", json!(true), Kind::Bit(vec![1])),
                        bits("b'1010101011'", &[0xAB, 0x02], &[0x02, 0xAB]),
                        bits(&format!("b'{}'", "1".repeat(64)), &[0xFF; 8], &[0xFF; 8]),
                        uint(16_777_215),
                    ],
                ),
                row(
                    2,
                    vec![
                        cell("b'0'", json!(false), Kind::Bit(vec![0])),
                        bits("b'0000000001'", &[0x01, 0x00], &[0x00, 0x01]),
                        bits(
                            "b'1'",
                            &[0x01, 0, 0, 0, 0, 0, 0, 0],
                            &[0, 0, 0, 0, 0, 0, 0, 0x01],
                        ),
                        uint(0),
                    ],
                ),
                row(3, vec![null(); 4]),
            ],
        },
        Table {
            name: "jsons",
            // MariaDB's JSON is LONGTEXT with a json_valid check: the text as inserted.
            columns: columns(&[("j", "JSON"), ("jn", "JSON NOT NULL")]),
            rows: vec![
                row(
                    1,
                    vec![
                        text(r#"{"a": 1, "b": [true, null, "😀"], "c": {"d": 1.5e3}}"#),
                        text("[]"),
                    ],
                ),
                row(2, vec![null(), text(r#""just a string""#)]),
            ],
        },
    ]
}

/// `'p0','p1',…` for an ENUM or SET definition.
fn members(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("'{prefix}{i}'"))
        .collect::<Vec<_>>()
        .join(",")
}

fn zero(text: &str) -> Kind {
    Kind::ZeroTemporal(text.into())
}

fn time(sql: &str, micros: i64) -> Cell {
    cell(sql, json!(micros), Kind::TimeMicros(micros))
}

fn datetime(sql: &str, debezium: i64, micros: i64) -> Cell {
    cell(sql, json!(debezium), Kind::DatetimeMicros(micros))
}

fn timestamp(sql: &str, utc: &str, micros: i64) -> Cell {
    cell(sql, json!(utc), Kind::TimestampMicros(micros))
}

fn year(sql: &str, debezium: u32, stored: u32) -> Cell {
    cell(sql, json!(debezium), Kind::Year(stored))
}

/// The UPDATE and DELETE made after the inserts, and the rows they leave.
const UPDATE_TABLE: &str = "decimals";
const UPDATE_ID: i64 = 1;
const DELETE_TABLE: &str = "times";
const DELETE_ID: i64 = 1;

fn updated_cells(before: &Row) -> Vec<Cell> {
    let mut after = before.cells.clone();
    after[0] = decimal("-12345678901234567890123456789012345.678901234567890123456789012345");
    after[1] = decimal("-12345678.89");
    after
}

// ---------------------------------------------------------------------------------------------
// Running a capture

/// What one capture run wrote, per table.
struct Captured {
    db: String,
    name: String,
    topics: BTreeMap<&'static str, Vec<Record>>,
}

/// Creates the tables in a new database, captures the inserts, the update and the delete with
/// the `[output]` settings `output`, and reads every table's topic.
async fn capture(tables: &[Table], prefix: &str, output: &str) -> Result<Captured> {
    let stack = Stack::from_env()?;
    let db = unique_name(&format!("{prefix}_db"));
    let name = unique_name(prefix);
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    for table in tables {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, ddl)| format!("`{name}` {ddl}"))
            .collect();
        admin
            .query_drop(format!(
                "CREATE TABLE `{db}`.`{}` (id INT PRIMARY KEY, {}) DEFAULT CHARSET=utf8mb4",
                table.name,
                columns.join(", ")
            ))
            .await
            .with_context(|| format!("creating {}", table.name))?;
    }
    let start = binlog_end(&mut admin).await?;
    let mut capture = InProcess::start(config(&capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        &format!("[output]\n{output}\n"),
    ))?);

    admin.query_drop("SET SESSION time_zone = '+05:00'").await?;
    for table in tables {
        let names: Vec<String> = table
            .columns
            .iter()
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        for row in &table.rows {
            ensure!(
                row.cells.len() == table.columns.len(),
                "{} row {} has {} cells for {} columns",
                table.name,
                row.id,
                row.cells.len(),
                table.columns.len()
            );
            let mode = if row.lenient { "''" } else { "DEFAULT" };
            admin
                .query_drop(format!("SET SESSION sql_mode = {mode}"))
                .await?;
            let values: Vec<&str> = row.cells.iter().map(|c| c.sql.as_str()).collect();
            admin
                .query_drop(format!(
                    "INSERT INTO `{db}`.`{}` (id, {}) VALUES ({}, {})",
                    table.name,
                    names.join(", "),
                    row.id,
                    values.join(", ")
                ))
                .await
                .with_context(|| format!("inserting {} row {}", table.name, row.id))?;
        }
    }
    admin.query_drop("SET SESSION sql_mode = DEFAULT").await?;
    admin
        .query_drop(format!(
            "UPDATE `{db}`.`{UPDATE_TABLE}` SET d65 = -d65, d10 = d10 + 0.01 WHERE id = {UPDATE_ID}"
        ))
        .await?;
    admin
        .query_drop(format!(
            "DELETE FROM `{db}`.`{DELETE_TABLE}` WHERE id = {DELETE_ID}"
        ))
        .await?;
    let end = binlog_end(&mut admin).await?;
    capture
        .wait_committed(&end, Duration::from_secs(90))
        .await?;
    capture.stop().await?;

    let mut topics = BTreeMap::new();
    for table in tables {
        let topic = format!("{name}.{db}.{}", table.name);
        topics.insert(table.name, read_committed(&stack.kafka_bootstrap, &topic)?);
    }
    Ok(Captured { db, name, topics })
}

impl Captured {
    fn records(&self, table: &str) -> Result<&[Record]> {
        self.topics
            .get(table)
            .map(Vec::as_slice)
            .with_context(|| format!("no topic read for {table}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Checking Debezium JSON

/// Differences between a row image (`payload.before` or `.after`) and the expected row.
fn check_json_row(table: &Table, id: i64, cells: &[Cell], image: &Value, problems: &mut Problems) {
    let at = format!("{} id={id}", table.name);
    let Some(fields) = image.as_object() else {
        problems.push(format!("{at}: row image is {image}"));
        return;
    };
    if fields.len() != table.columns.len() + 1 {
        problems.push(format!(
            "{at}: {} fields, expected {}: {image}",
            fields.len(),
            table.columns.len() + 1
        ));
    }
    if fields.get("id") != Some(&json!(id)) {
        problems.push(format!("{at}: id is {:?}", fields.get("id")));
    }
    for ((column, _), cell) in table.columns.iter().zip(cells) {
        let actual = fields.get(*column).unwrap_or(&Value::Null);
        if !fields.contains_key(*column) {
            problems.push(format!("{at}.{column}: missing"));
        } else if let Some(difference) = json_difference(&cell.json, actual) {
            problems.push(format!(
                "{at}.{column} (inserted {}): {difference}",
                cell.sql
            ));
        }
    }
}

fn json_difference(expected: &Json, actual: &Value) -> Option<String> {
    match expected {
        Json::Is(value) => (value != actual).then(|| format!("expected {value}, got {actual}")),
        Json::Decimal(text) => {
            let scale = text
                .split_once('.')
                .map_or(0, |(_, fraction)| fraction.len());
            match connect_decimal_text(actual, scale) {
                Ok(got) if got == *text => None,
                Ok(got) => Some(format!("expected decimal {text}, got {got} ({actual})")),
                Err(e) => Some(format!("expected decimal {text}, got {actual}: {e:#}")),
            }
        }
        Json::Bytes(bytes) => match base64_field(actual) {
            Ok(got) if got == *bytes => None,
            Ok(got) => Some(format!("expected bytes {bytes:02x?}, got {got:02x?}")),
            Err(e) => Some(format!("expected bytes {bytes:02x?}, got {actual}: {e:#}")),
        },
    }
}

fn base64_field(value: &Value) -> Result<Vec<u8>> {
    let text = value.as_str().context("not a string")?;
    BASE64.decode(text).context("not base64")
}

/// A Connect `Decimal` field (base64 of a big-endian two's-complement unscaled integer) as
/// decimal text with `scale` fractional digits.
fn connect_decimal_text(value: &Value, scale: usize) -> Result<String> {
    let bytes = base64_field(value)?;
    let first = *bytes.first().context("no bytes")?;
    let negative = first & 0x80 != 0;
    // The magnitude, big-endian: two's complement negated (invert, add one) when negative.
    let mut magnitude = bytes.clone();
    if negative {
        for b in &mut magnitude {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    // Decimal digits by repeated division by ten.
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for b in &mut magnitude {
            let current = remainder * 256 + u32::from(*b);
            *b = (current / 10) as u8;
            remainder = current % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let digits = String::from_utf8(digits)?;
    let (int_part, fraction) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Ok(if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{fraction}")
    })
}

/// Collected mismatches, so that one run reports all of them.
type Problems = Vec<String>;

fn report(problems: &Problems) -> Result<()> {
    ensure!(
        problems.is_empty(),
        "{} mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

/// The payload of a JSON record: under `payload` with schemas, the whole value without.
fn payload(record: &Record, schemas: bool) -> Result<Value> {
    let value = record.json()?;
    if schemas {
        ensure!(
            value.get("schema").is_some(),
            "record has no schema: {value}"
        );
        Ok(value["payload"].clone())
    } else {
        ensure!(
            value.get("schema").is_none() && value.get("op").is_some(),
            "record is not a bare payload: {value}"
        );
        Ok(value)
    }
}

/// The records of `op` in a JSON topic, tombstones skipped.
fn json_records<'r>(
    records: &'r [Record],
    op: &str,
    schemas: bool,
) -> Result<Vec<(&'r Record, Value)>> {
    let mut found = Vec::new();
    for record in records.iter().filter(|r| r.value.is_some()) {
        let payload = payload(record, schemas)?;
        if payload["op"] == op {
            found.push((record, payload));
        }
    }
    Ok(found)
}

/// The row each create record is for (by the id in its image), with every row of the table
/// created exactly once; mismatches go to `problems`.
fn match_rows<'t, T>(
    table: &'t Table,
    creates: Vec<(Option<i64>, T)>,
    problems: &mut Problems,
) -> Vec<(&'t Row, T)> {
    let mut matched: Vec<(&Row, T)> = Vec::new();
    for (id, create) in creates {
        match table.rows.iter().find(|r| Some(r.id) == id) {
            Some(row) if matched.iter().any(|(m, _)| m.id == row.id) => {
                problems.push(format!("{} id={}: created twice", table.name, row.id));
            }
            Some(row) => matched.push((row, create)),
            None => problems.push(format!("{}: create for unknown id {id:?}", table.name)),
        }
    }
    for row in &table.rows {
        if !matched.iter().any(|(m, _)| m.id == row.id) {
            problems.push(format!("{} id={}: no create record", table.name, row.id));
        }
    }
    matched
}

/// The key of a JSON record, without its schema.
fn json_key(record: &Record, schemas: bool) -> Result<Value> {
    let key = record.key_json()?;
    Ok(if schemas { key["payload"].clone() } else { key })
}

/// Checks every created row of every table, and the update and delete records.
fn check_json_topics(tables: &[Table], captured: &Captured, schemas: bool) -> Result<()> {
    let mut problems = Problems::new();
    for table in tables {
        let records = captured.records(table.name)?;
        let creates = json_records(records, "c", schemas)?
            .into_iter()
            .map(|(record, payload)| (payload["after"]["id"].as_i64(), (record, payload)))
            .collect();
        for (row, (record, payload)) in match_rows(table, creates, &mut problems) {
            let key = json_key(record, schemas)?;
            if key != json!({"id": row.id}) {
                problems.push(format!("{} id={}: key is {key}", table.name, row.id));
            }
            if payload["before"] != Value::Null {
                problems.push(format!(
                    "{} id={}: create has a before image",
                    table.name, row.id
                ));
            }
            if payload["source"]["db"] != json!(captured.db)
                || payload["source"]["table"] != json!(table.name)
            {
                problems.push(format!("{}: source is {}", table.name, payload["source"]));
            }
            check_json_row(table, row.id, &row.cells, &payload["after"], &mut problems);
        }
    }

    // UPDATE: both images, every field.
    let updated = find_table(tables, UPDATE_TABLE)?;
    let before = updated.row(UPDATE_ID)?;
    let updates = json_records(captured.records(UPDATE_TABLE)?, "u", schemas)?;
    ensure!(updates.len() == 1, "{} updates: {updates:?}", updates.len());
    let (_, update) = &updates[0];
    check_json_row(
        updated,
        UPDATE_ID,
        &before.cells,
        &update["before"],
        &mut problems,
    );
    check_json_row(
        updated,
        UPDATE_ID,
        &updated_cells(before),
        &update["after"],
        &mut problems,
    );

    // DELETE: the before image, no after image, then a tombstone with the key.
    let deleted = find_table(tables, DELETE_TABLE)?;
    let records = captured.records(DELETE_TABLE)?;
    let deletes = json_records(records, "d", schemas)?;
    ensure!(deletes.len() == 1, "{} deletes: {deletes:?}", deletes.len());
    let (delete_record, delete) = &deletes[0];
    check_json_row(
        deleted,
        DELETE_ID,
        &deleted.row(DELETE_ID)?.cells,
        &delete["before"],
        &mut problems,
    );
    if delete["after"] != Value::Null {
        problems.push(format!("delete has an after image: {}", delete["after"]));
    }
    let tombstone = next_record(records, delete_record).context("no record after the delete")?;
    ensure!(
        tombstone.value.is_none(),
        "the delete is not followed by a tombstone"
    );
    for (what, record) in [("delete", *delete_record), ("tombstone", tombstone)] {
        let key = json_key(record, schemas)?;
        if key != json!({"id": DELETE_ID}) {
            problems.push(format!("{what} key is {key}"));
        }
    }
    report(&problems)
}

/// The record right after `record` in its partition.
fn next_record<'r>(records: &'r [Record], record: &Record) -> Option<&'r Record> {
    records
        .iter()
        .filter(|r| r.partition == record.partition && r.offset > record.offset)
        .min_by_key(|r| r.offset)
}

fn find_table<'t>(tables: &'t [Table], name: &str) -> Result<&'t Table> {
    tables
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("no table {name}"))
}

/// The Connect schema of `column` in the `after` struct of a record's value schema.
fn field_schema<'v>(value: &'v Value, column: &str) -> Result<&'v Value> {
    let envelope = value["schema"]["fields"]
        .as_array()
        .context("value schema has no fields")?;
    let after = envelope
        .iter()
        .find(|f| f["field"] == "after")
        .context("value schema has no after field")?;
    after["fields"]
        .as_array()
        .context("after has no fields")?
        .iter()
        .find(|f| f["field"] == column)
        .with_context(|| format!("after has no field {column}"))
}

/// Field schemas of a sample of columns, as Debezium writes them (default settings).
fn expected_field_schemas() -> Vec<(&'static str, Value)> {
    let logical = |type_name: &str, name: &str, optional: bool, field: &str| json!({"type": type_name, "optional": optional, "name": name, "version": 1, "field": field});
    vec![
        (
            "ints",
            json!({"type": "int32", "optional": false, "field": "id"}),
        ),
        (
            "ints",
            json!({"type": "int16", "optional": true, "field": "t"}),
        ),
        (
            "ints",
            json!({"type": "int16", "optional": true, "field": "tu"}),
        ),
        (
            "ints",
            json!({"type": "int16", "optional": true, "field": "s"}),
        ),
        (
            "ints",
            json!({"type": "int32", "optional": true, "field": "su"}),
        ),
        (
            "ints",
            json!({"type": "int32", "optional": true, "field": "mu"}),
        ),
        (
            "ints",
            json!({"type": "int64", "optional": true, "field": "iu"}),
        ),
        (
            "ints",
            json!({"type": "int64", "optional": true, "field": "b"}),
        ),
        (
            "ints",
            json!({"type": "int64", "optional": true, "field": "bu"}),
        ),
        (
            "decimals",
            json!({"type": "bytes", "optional": true,
                   "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                   "parameters": {"scale": "30", "connect.decimal.precision": "65"},
                   "field": "d65"}),
        ),
        (
            "decimals",
            json!({"type": "bytes", "optional": true,
                   "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                   "parameters": {"scale": "2", "connect.decimal.precision": "10"},
                   "field": "d10"}),
        ),
        (
            "floats",
            json!({"type": "float", "optional": true, "field": "f"}),
        ),
        (
            "floats",
            json!({"type": "double", "optional": true, "field": "d"}),
        ),
        (
            "dates",
            logical("int32", "io.debezium.time.Date", false, "d"),
        ),
        (
            "dates",
            logical("int32", "io.debezium.time.Date", true, "dn"),
        ),
        (
            "times",
            logical("int64", "io.debezium.time.MicroTime", true, "t0"),
        ),
        (
            "times",
            logical("int64", "io.debezium.time.MicroTime", true, "t6"),
        ),
        (
            "datetimes",
            logical("int64", "io.debezium.time.Timestamp", true, "dt0"),
        ),
        (
            "datetimes",
            logical("int64", "io.debezium.time.Timestamp", true, "dt3"),
        ),
        (
            "datetimes",
            logical("int64", "io.debezium.time.MicroTimestamp", true, "dt4"),
        ),
        (
            "datetimes",
            logical("int64", "io.debezium.time.MicroTimestamp", true, "dt6"),
        ),
        (
            "datetimes",
            logical("int64", "io.debezium.time.Timestamp", false, "dtn"),
        ),
        (
            "timestamps",
            logical("string", "io.debezium.time.ZonedTimestamp", true, "ts0"),
        ),
        (
            "timestamps",
            logical("string", "io.debezium.time.ZonedTimestamp", true, "ts6"),
        ),
        (
            "years",
            logical("int32", "io.debezium.time.Year", true, "y"),
        ),
        (
            "years",
            logical("int32", "io.debezium.time.Year", false, "yn"),
        ),
        (
            "texts",
            json!({"type": "string", "optional": true, "field": "v"}),
        ),
        (
            "texts",
            json!({"type": "string", "optional": true, "field": "vbig"}),
        ),
        (
            "texts",
            json!({"type": "string", "optional": true, "field": "tl"}),
        ),
        (
            "binaries",
            json!({"type": "bytes", "optional": true, "field": "bin"}),
        ),
        (
            "binaries",
            json!({"type": "bytes", "optional": true, "field": "bl"}),
        ),
        (
            "enums",
            json!({"type": "string", "optional": true, "name": "io.debezium.data.Enum",
                   "version": 1, "parameters": {"allowed": "small,médium,large"}, "field": "e"}),
        ),
        (
            "enums",
            json!({"type": "string", "optional": true, "name": "io.debezium.data.EnumSet",
                   "version": 1, "parameters": {"allowed": "red,green,blue,ünï"}, "field": "s"}),
        ),
        (
            "enums",
            json!({"type": "string", "optional": true, "name": "io.debezium.data.Enum",
                   "version": 1, "parameters": {"allowed": "café,naïve,€uro"}, "field": "el"}),
        ),
        (
            "bits",
            json!({"type": "boolean", "optional": true, "field": "b1"}),
        ),
        (
            "bits",
            json!({"type": "bytes", "optional": true, "name": "io.debezium.data.Bits",
                   "version": 1, "parameters": {"length": "10"}, "field": "b10"}),
        ),
        (
            "bits",
            json!({"type": "bytes", "optional": true, "name": "io.debezium.data.Bits",
                   "version": 1, "parameters": {"length": "64"}, "field": "b64"}),
        ),
        (
            "jsons",
            json!({"type": "string", "optional": true, "field": "j"}),
        ),
        (
            "jsons",
            json!({"type": "string", "optional": false, "field": "jn"}),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checking protobuf

/// Differences between a protobuf row image and the expected row.
fn check_pb_row(
    table: &Table,
    id: i64,
    cells: &[Cell],
    image: Option<&pb::Row>,
    problems: &mut Problems,
) {
    let at = format!("{} id={id}", table.name);
    let Some(image) = image else {
        problems.push(format!("{at}: row image missing"));
        return;
    };
    let names: Vec<&str> = image.columns.iter().map(|c| c.name.as_str()).collect();
    let expected_names: Vec<&str> = std::iter::once("id")
        .chain(table.columns.iter().map(|(name, _)| *name))
        .collect();
    if names != expected_names {
        problems.push(format!(
            "{at}: columns {names:?}, expected {expected_names:?}"
        ));
        return;
    }
    let kind = |i: usize| image.columns[i].value.as_ref().and_then(|v| v.kind.clone());
    if kind(0) != Some(Kind::Int(id)) {
        problems.push(format!("{at}: id is {:?}", kind(0)));
    }
    for (i, ((column, _), cell)) in table.columns.iter().zip(cells).enumerate() {
        let actual = kind(i + 1);
        if actual != cell.pb {
            problems.push(format!(
                "{at}.{column} (inserted {}): expected {:?}, got {actual:?}",
                cell.sql, cell.pb
            ));
        }
    }
}

/// The `id` column of a protobuf row image.
fn pb_id(image: Option<&pb::Row>) -> Option<i64> {
    let id = image?.columns.iter().find(|c| c.name == "id")?;
    match id.value.as_ref()?.kind {
        Some(Kind::Int(id)) => Some(id),
        _ => None,
    }
}

/// A protobuf key as (column, value) pairs.
fn pb_key(key: &pb::ChangeKey) -> Vec<(&str, Option<Kind>)> {
    key.columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.value.as_ref().and_then(|v| v.kind.clone()),
            )
        })
        .collect()
}

/// Decoded protobuf records of `op`, tombstones skipped.
fn pb_records(records: &[Record], op: pb::Operation) -> Result<Vec<(&Record, pb::ChangeEvent)>> {
    let mut found = Vec::new();
    for record in records {
        let Some(value) = &record.value else {
            continue;
        };
        let event = decode_protobuf(value)?;
        if event.op() == op {
            found.push((record, event));
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread")]
async fn debezium_json_with_schemas_carries_every_type_exactly() -> Result<()> {
    let tables = tables();
    let captured = capture(
        &tables,
        "captypes_js",
        "format = \"debezium-json\"\nschemas = true",
    )
    .await?;
    check_json_topics(&tables, &captured, true)?;

    // Field schemas of a sample of columns.
    let mut problems = Problems::new();
    for (table, expected) in expected_field_schemas() {
        let column = expected["field"].as_str().context("field name")?;
        let record = captured
            .records(table)?
            .first()
            .with_context(|| format!("no records for {table}"))?;
        let actual = field_schema(&record.json()?, column)?.clone();
        if actual != expected {
            problems.push(format!(
                "{table}.{column} schema: expected {expected}, got {actual}"
            ));
        }
    }
    // The envelope and key schemas name the table.
    let first = captured
        .records("ints")?
        .first()
        .context("no ints records")?;
    let value = first.json()?;
    let envelope = format!("{}.{}.ints.Envelope", captured.name, captured.db);
    if value["schema"]["name"] != json!(envelope) {
        problems.push(format!(
            "envelope schema name is {}",
            value["schema"]["name"]
        ));
    }
    let key = first.key_json()?;
    let expected_key_schema = json!({
        "type": "struct",
        "fields": [{"type": "int32", "optional": false, "field": "id"}],
        "optional": false,
        "name": format!("{}.{}.ints.Key", captured.name, captured.db),
    });
    if key["schema"] != expected_key_schema {
        problems.push(format!("key schema is {}", key["schema"]));
    }
    report(&problems)
}

#[tokio::test(flavor = "multi_thread")]
async fn debezium_json_without_schemas_carries_every_type_exactly() -> Result<()> {
    let tables = tables();
    let captured = capture(
        &tables,
        "captypes_jp",
        "format = \"debezium-json\"\nschemas = false",
    )
    .await?;
    check_json_topics(&tables, &captured, false)
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_carries_every_type_exactly() -> Result<()> {
    let tables = tables();
    let captured = capture(&tables, "captypes_pb", "format = \"protobuf\"").await?;
    let mut problems = Problems::new();
    for table in &tables {
        let records = captured.records(table.name)?;
        let creates = pb_records(records, pb::Operation::Create)?
            .into_iter()
            .map(|(record, event)| (pb_id(event.after.as_ref()), (record, event)))
            .collect();
        for (row, (record, event)) in match_rows(table, creates, &mut problems) {
            if event.before.is_some() {
                problems.push(format!(
                    "{} id={}: create has a before image",
                    table.name, row.id
                ));
            }
            let source = event.source.as_ref().context("no source")?;
            if source.db != captured.db || source.table != table.name {
                problems.push(format!("{}: source is {source:?}", table.name));
            }
            check_pb_row(
                table,
                row.id,
                &row.cells,
                event.after.as_ref(),
                &mut problems,
            );
            let key = decode_protobuf_key(record.key.as_deref().context("no key")?)?;
            let key = pb_key(&key);
            if key != [("id", Some(Kind::Int(row.id)))] {
                problems.push(format!("{} id={}: key is {key:?}", table.name, row.id));
            }
        }
    }

    // The table schema names each column's SQL type; a sample.
    for (table, column, sql_type, nullable, charset) in [
        ("ints", "bu", "bigint unsigned", true, ""),
        ("decimals", "d65", "decimal(65,30)", true, ""),
        ("decimals", "d5", "decimal(5,5)", true, ""),
        ("times", "t2", "time(2)", true, ""),
        ("datetimes", "dtn", "datetime", false, ""),
        ("timestamps", "ts6", "timestamp(6)", true, ""),
        ("years", "y", "year", true, ""),
        ("years", "u", "tinyint unsigned", true, ""),
        ("texts", "v", "varchar(50)", true, "utf8mb4"),
        ("texts", "cl", "char(10)", true, "latin1"),
        ("texts", "vbig", "varchar(100)", true, "utf8mb4"),
        ("binaries", "mb", "mediumblob", true, ""),
        ("binaries", "bin", "binary(4)", true, ""),
        ("binaries", "vb", "varbinary(300)", true, ""),
        (
            "enums",
            "e",
            "enum('small','médium','large')",
            true,
            "utf8mb4",
        ),
        ("enums", "el", "enum('café','naïve','€uro')", true, "latin1"),
        ("enums", "sl", "set('é','ü','ÿ')", true, "latin1"),
        ("bits", "b10", "bit(10)", true, ""),
    ] {
        let record = captured
            .records(table)?
            .first()
            .with_context(|| format!("no records for {table}"))?;
        let event = decode_protobuf(record.value.as_deref().context("no value")?)?;
        let schema = event.schema.context("no table schema")?;
        let actual = schema.columns.iter().find(|c| c.name == column);
        let expected = pb::ColumnSchema {
            name: column.into(),
            sql_type: sql_type.into(),
            nullable,
            charset: charset.into(),
        };
        if actual != Some(&expected) {
            problems.push(format!(
                "{table}.{column}: schema {actual:?}, expected {expected:?}"
            ));
        }
        if schema.primary_key != ["id"] {
            problems.push(format!("{table}: primary key {:?}", schema.primary_key));
        }
    }

    // UPDATE: both images.
    let updated = find_table(&tables, UPDATE_TABLE)?;
    let before = updated.row(UPDATE_ID)?;
    let updates = pb_records(captured.records(UPDATE_TABLE)?, pb::Operation::Update)?;
    ensure!(updates.len() == 1, "{} updates", updates.len());
    let (_, update) = &updates[0];
    check_pb_row(
        updated,
        UPDATE_ID,
        &before.cells,
        update.before.as_ref(),
        &mut problems,
    );
    check_pb_row(
        updated,
        UPDATE_ID,
        &updated_cells(before),
        update.after.as_ref(),
        &mut problems,
    );

    // DELETE: the before image only, then a tombstone.
    let deleted = find_table(&tables, DELETE_TABLE)?;
    let records = captured.records(DELETE_TABLE)?;
    let deletes = pb_records(records, pb::Operation::Delete)?;
    ensure!(deletes.len() == 1, "{} deletes", deletes.len());
    let (delete_record, delete) = &deletes[0];
    check_pb_row(
        deleted,
        DELETE_ID,
        &deleted.row(DELETE_ID)?.cells,
        delete.before.as_ref(),
        &mut problems,
    );
    if delete.after.is_some() {
        problems.push("delete has an after image".into());
    }
    let tombstone = next_record(records, delete_record).context("no record after the delete")?;
    ensure!(
        tombstone.value.is_none(),
        "the delete is not followed by a tombstone"
    );
    for (what, record) in [("delete", *delete_record), ("tombstone", tombstone)] {
        let key = decode_protobuf_key(record.key.as_deref().context("no key")?)?;
        if pb_key(&key) != [("id", Some(Kind::Int(DELETE_ID)))] {
            problems.push(format!("{what} key is {key:?}"));
        }
    }
    report(&problems)
}

// ---------------------------------------------------------------------------------------------
// The test's own helpers, checked on known values

#[test]
fn connect_decimal_text_reads_twos_complement() -> Result<()> {
    let encode = |bytes: &[u8]| json!(BASE64.encode(bytes));
    ensure!(connect_decimal_text(&encode(&[0x00]), 2)? == "0.00");
    ensure!(connect_decimal_text(&encode(&[0xFF]), 2)? == "-0.01");
    // -1234567890 = 0xB669FD2E in 32-bit two's complement.
    ensure!(connect_decimal_text(&encode(&[0xB6, 0x69, 0xFD, 0x2E]), 2)? == "-12345678.90");
    // 2^64 - 1 needs a leading zero byte to stay positive.
    ensure!(
        connect_decimal_text(
            &encode(&[0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            0
        )? == "18446744073709551615"
    );
    ensure!(connect_decimal_text(&encode(&[0x80]), 0)? == "-128");
    ensure!(connect_decimal_text(&encode(&[0x01, 0x00]), 3)? == "0.256");
    Ok(())
}
