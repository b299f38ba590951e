//! What the codec is asked to write: the value format and the options that shape it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::CodecError;

/// The format of Kafka record keys and values.
///
/// In configuration it is either a name or a table:
///
/// ```toml
/// value_format = "protobuf"
/// value_format = "debezium-json"                         # with schemas, like Connect's default
/// value_format = { format = "debezium-json", schemas = false }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// Debezium's JSON envelope as Kafka Connect's `JsonConverter` writes it; `schemas` is the
    /// converter's `schemas.enable` (each record carries its Connect schema).
    DebeziumJson {
        /// Whether records are `{"schema":…,"payload":…}` or the payload alone.
        schemas: bool,
    },
    /// `rowferry.event.v1.ChangeEvent` values and `ChangeKey` keys.
    Protobuf,
}

impl ValueFormat {
    /// The format's name in configuration.
    pub fn name(self) -> &'static str {
        match self {
            ValueFormat::DebeziumJson { .. } => "debezium-json",
            ValueFormat::Protobuf => "protobuf",
        }
    }

    /// The `content-type` header value for records of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ValueFormat::DebeziumJson { .. } => "application/json",
            ValueFormat::Protobuf => "application/x-protobuf; proto=rowferry.event.v1.ChangeEvent",
        }
    }
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueFormat::DebeziumJson { schemas: false } => {
                f.write_str("debezium-json (no schemas)")
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for ValueFormat {
    type Err = CodecError;

    /// A format by name; `debezium-json` carries schemas, as Kafka Connect does by default.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "debezium-json" => Ok(ValueFormat::DebeziumJson { schemas: true }),
            "protobuf" => Ok(ValueFormat::Protobuf),
            _ => Err(CodecError::UnknownValueFormat {
                name: name.to_owned(),
            }),
        }
    }
}

impl<'de> Deserialize<'de> for ValueFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueFormatVisitor)
    }
}

struct ValueFormatVisitor;

impl<'de> Visitor<'de> for ValueFormatVisitor {
    type Value = ValueFormat;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            r#""debezium-json", "protobuf" or { format = "debezium-json", schemas = <bool> }"#,
        )
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ValueFormat, E> {
        name.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValueFormat, A::Error> {
        let mut format: Option<String> = None;
        let mut schemas: Option<bool> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" if format.is_none() => format = Some(map.next_value()?),
                "schemas" if schemas.is_none() => schemas = Some(map.next_value()?),
                "format" | "schemas" => {
                    return Err(de::Error::custom(format!("duplicate key `{key}`")));
                }
                _ => return Err(de::Error::unknown_field(&key, &["format", "schemas"])),
            }
        }
        let format = format.ok_or_else(|| de::Error::missing_field("format"))?;
        match (format.parse().map_err(de::Error::custom)?, schemas) {
            (ValueFormat::DebeziumJson { .. }, Some(schemas)) => {
                Ok(ValueFormat::DebeziumJson { schemas })
            }
            (ValueFormat::Protobuf, Some(_)) => Err(de::Error::custom(
                "`schemas` only applies to format \"debezium-json\"; remove it for \"protobuf\"",
            )),
            (parsed, None) => Ok(parsed),
        }
    }
}

/// How BIGINT UNSIGNED columns are written in Debezium JSON (Debezium's
/// `bigint.unsigned.handling.mode`; configuration values `long` and `precise`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BigintUnsignedMode {
    /// Connect INT64: values above `i64::MAX` wrap to negative numbers (Debezium's default).
    #[default]
    Long,
    /// Connect `Decimal` with scale 0 and precision 20: exact, but bytes instead of a number.
    Precise,
}

/// Options that shape every record an [`Encoder`](super::Encoder) writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecOptions {
    /// The capture's logical name (Debezium's `topic.prefix`): the first part of every schema
    /// name (`{prefix}.{db}.{table}.Envelope`).
    pub topic_prefix: String,
    /// How BIGINT UNSIGNED values are written in Debezium JSON.
    pub bigint_unsigned: BigintUnsignedMode,
    /// Whether Debezium JSON field schemas carry the SQL type (Debezium's
    /// `column.propagate.source.type` for every column): the parameters
    /// `__debezium.source.column.type`, `…length`, `…scale` and `…name`, from which a sink can
    /// rebuild the exact column type.
    pub propagate_source_types: bool,
    /// rowferry's version, written as `source.version`.
    pub rowferry_version: String,
}

impl CodecOptions {
    /// Options with Debezium's defaults for everything but the names.
    pub fn new(topic_prefix: impl Into<String>, rowferry_version: impl Into<String>) -> Self {
        Self {
            topic_prefix: topic_prefix.into(),
            bigint_unsigned: BigintUnsignedMode::default(),
            propagate_source_types: false,
            rowferry_version: rowferry_version.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Config {
        value_format: ValueFormat,
    }

    fn parse(json: &str) -> Result<ValueFormat, String> {
        serde_json::from_str::<Config>(json)
            .map(|c| c.value_format)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_names_and_tables() {
        assert_eq!(
            parse(r#"{"value_format":"debezium-json"}"#),
            Ok(ValueFormat::DebeziumJson { schemas: true })
        );
        assert_eq!(
            parse(r#"{"value_format":"protobuf"}"#),
            Ok(ValueFormat::Protobuf)
        );
        assert_eq!(
            parse(r#"{"value_format":{"format":"debezium-json","schemas":false}}"#),
            Ok(ValueFormat::DebeziumJson { schemas: false })
        );
        assert_eq!(
            parse(r#"{"value_format":{"format":"protobuf"}}"#),
            Ok(ValueFormat::Protobuf)
        );
    }

    #[test]
    fn rejects_unknown_names_and_keys() {
        let unknown = parse(r#"{"value_format":"avro"}"#).expect_err("avro is not a format");
        assert!(
            unknown.contains("unknown value format \"avro\""),
            "{unknown}"
        );
        let key = parse(r#"{"value_format":{"format":"protobuf","schema":true}}"#)
            .expect_err("unknown key");
        assert!(key.contains("unknown field `schema`"), "{key}");
        let misplaced = parse(r#"{"value_format":{"format":"protobuf","schemas":true}}"#)
            .expect_err("schemas is for JSON");
        assert!(misplaced.contains("only applies"), "{misplaced}");
        assert!(parse(r#"{"value_format":{"schemas":true}}"#).is_err());
    }

    #[test]
    fn names_content_types() {
        assert_eq!(
            ValueFormat::DebeziumJson { schemas: false }.content_type(),
            "application/json"
        );
        assert_eq!(
            ValueFormat::Protobuf.content_type(),
            "application/x-protobuf; proto=rowferry.event.v1.ChangeEvent"
        );
    }

    #[test]
    fn reads_bigint_unsigned_modes() {
        let mode: BigintUnsignedMode = serde_json::from_str(r#""precise""#).expect("known mode");
        assert_eq!(mode, BigintUnsignedMode::Precise);
        assert_eq!(BigintUnsignedMode::default(), BigintUnsignedMode::Long);
    }
}
