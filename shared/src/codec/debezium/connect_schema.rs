//! Kafka Connect schemas, rendered as `JsonConverter.asJsonSchema` renders them.
//!
//! Key order is fixed by the converter: `type`, then `fields` (struct) or `items` (array), then
//! `optional`, `name`, `version`, `doc`, `parameters`, `default`, and `field` when the schema is
//! a struct field. Absent properties are left out, never written as `null`.

use crate::codec::json_text::{push_i64, push_string};

/// A Connect schema type with what it contains.
enum Body {
    /// `int16`, `string`, `bytes`, …
    Primitive(&'static str),
    /// A struct's fields in order, with their names.
    Struct(Vec<(String, ConnectSchema)>),
    /// An array's element schema.
    Array(Box<ConnectSchema>),
}

/// One Connect schema.
pub(crate) struct ConnectSchema {
    body: Body,
    optional: bool,
    name: Option<String>,
    version: Option<i32>,
    doc: Option<&'static str>,
    parameters: Vec<(&'static str, String)>,
    /// The default as a string (the only kind of default rowferry writes).
    default: Option<&'static str>,
}

impl ConnectSchema {
    fn with_body(body: Body) -> Self {
        Self {
            body,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
        }
    }

    /// A required primitive schema (`int64`, `string`, …).
    pub(crate) fn primitive(type_name: &'static str) -> Self {
        Self::with_body(Body::Primitive(type_name))
    }

    /// A required struct schema with these fields.
    pub(crate) fn structure(fields: Vec<(String, ConnectSchema)>) -> Self {
        Self::with_body(Body::Struct(fields))
    }

    /// A required array schema of `items`.
    pub(crate) fn array(items: ConnectSchema) -> Self {
        Self::with_body(Body::Array(Box::new(items)))
    }

    /// Marks the schema optional (or required).
    pub(crate) fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Names the schema (a logical type or a record name).
    pub(crate) fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the schema version.
    pub(crate) fn version(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the schema doc.
    pub(crate) fn doc(mut self, doc: &'static str) -> Self {
        self.doc = Some(doc);
        self
    }

    /// Adds a parameter; parameters keep the order they were added in.
    pub(crate) fn parameter(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.parameters.push((key, value.into()));
        self
    }

    /// Sets a string default value.
    pub(crate) fn default_string(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    /// Writes the schema's JSON; `field` is its name when it is a struct field.
    pub(crate) fn render(&self, field: Option<&str>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":");
        match &self.body {
            Body::Primitive(type_name) => push_string(out, type_name),
            Body::Struct(fields) => {
                out.extend_from_slice(b"\"struct\",\"fields\":[");
                for (i, (name, schema)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    schema.render(Some(name), out);
                }
                out.push(b']');
            }
            Body::Array(items) => {
                out.extend_from_slice(b"\"array\",\"items\":");
                items.render(None, out);
            }
        }
        out.extend_from_slice(if self.optional {
            b",\"optional\":true"
        } else {
            b",\"optional\":false"
        });
        if let Some(name) = &self.name {
            out.extend_from_slice(b",\"name\":");
            push_string(out, name);
        }
        if let Some(version) = self.version {
            out.extend_from_slice(b",\"version\":");
            push_i64(out, i64::from(version));
        }
        if let Some(doc) = self.doc {
            out.extend_from_slice(b",\"doc\":");
            push_string(out, doc);
        }
        if !self.parameters.is_empty() {
            out.extend_from_slice(b",\"parameters\":{");
            for (i, (key, value)) in self.parameters.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_string(out, key);
                out.push(b':');
                push_string(out, value);
            }
            out.push(b'}');
        }
        if let Some(default) = self.default {
            out.extend_from_slice(b",\"default\":");
            push_string(out, default);
        }
        if let Some(field) = field {
            out.extend_from_slice(b",\"field\":");
            push_string(out, field);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(schema: &ConnectSchema, field: Option<&str>) -> String {
        let mut out = Vec::new();
        schema.render(field, &mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn renders_keys_in_json_converter_order() {
        let schema = ConnectSchema::primitive("string")
            .optional(true)
            .name("io.debezium.data.Enum")
            .version(1)
            .parameter("allowed", "a,b")
            .default_string("a");
        assert_eq!(
            rendered(&schema, Some("e")),
            r#"{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"a,b"},"default":"a","field":"e"}"#
        );
        let nested = ConnectSchema::structure(vec![
            ("wkb".to_owned(), ConnectSchema::primitive("bytes")),
            (
                "srid".to_owned(),
                ConnectSchema::primitive("int32").optional(true),
            ),
        ])
        .optional(true)
        .name("io.debezium.data.geometry.Geometry")
        .version(1)
        .doc("Geometry");
        assert_eq!(
            rendered(&nested, None),
            r#"{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Geometry","version":1,"doc":"Geometry"}"#
        );
        let array = ConnectSchema::array(ConnectSchema::primitive("float"));
        assert_eq!(
            rendered(&array, Some("v")),
            r#"{"type":"array","items":{"type":"float","optional":false},"optional":false,"field":"v"}"#
        );
    }
}
