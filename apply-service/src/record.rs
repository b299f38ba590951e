//! A consumed record, copied once out of librdkafka with only what apply uses: the
//! `content-type` header read once, the source GTID only when transactional mode needs it,
//! the other headers only when they may have to be forwarded to the dead-letter topic.

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers, OwnedHeaders};
use rowferry_shared::telemetry::propagation::{TRACEPARENT, TRACESTATE};

/// What the `content-type` header says of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json…`.
    Json,
    /// `application/x-protobuf…`.
    Protobuf,
    /// No (or another) content type: the configured fallback decides.
    Unknown,
}

/// One record of a partition.
#[derive(Debug)]
pub struct Record {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Bytes>,
    /// Value bytes (`None`: a tombstone). Shared, so decoders can slice it without copying.
    pub value: Option<Bytes>,
    /// The declared value format.
    pub content_type: ContentType,
    /// `rowferry.source.gtid`, when kept.
    pub gtid: Option<Box<str>>,
    /// Every header, when kept.
    pub headers: Option<OwnedHeaders>,
    /// W3C `traceparent` and `tracestate` of the producer's span, when traces are exported.
    pub trace: Option<Box<TraceParent>>,
}

/// The trace context a record was produced in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// `traceparent`.
    pub traceparent: String,
    /// `tracestate`, if any.
    pub tracestate: Option<String>,
}

/// What to keep of each record besides key and value.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// The source GTID header (transactional mode groups records by it).
    pub gtid: bool,
    /// All headers (the dead-letter policy forwards them).
    pub headers: bool,
    /// The trace context headers (traces are exported).
    pub trace: bool,
}

impl Record {
    /// Copies what apply needs out of `message`.
    pub fn from_message(message: &BorrowedMessage<'_>, topic: Arc<str>, keep: Keep) -> Self {
        let mut content_type = ContentType::Unknown;
        let mut gtid = None;
        let mut traceparent = None;
        let mut tracestate = None;
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                if header.key.eq_ignore_ascii_case("content-type") {
                    content_type = match header.value {
                        Some(v) if starts_with_ignore_case(v, b"application/x-protobuf") => {
                            ContentType::Protobuf
                        }
                        Some(v) if starts_with_ignore_case(v, b"application/json") => {
                            ContentType::Json
                        }
                        _ => ContentType::Unknown,
                    };
                } else if keep.gtid && header.key == "rowferry.source.gtid" {
                    gtid = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned().into_boxed_str());
                } else if keep.trace && header.key == TRACEPARENT {
                    traceparent = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                } else if keep.trace && header.key == TRACESTATE {
                    tracestate = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                }
            }
        }
        Self {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(Bytes::copy_from_slice),
            value: message.payload().map(Bytes::copy_from_slice),
            content_type,
            gtid,
            headers: if keep.headers {
                message.headers().map(|h| h.detach())
            } else {
                None
            },
            trace: traceparent.map(|traceparent| {
                Box::new(TraceParent {
                    traceparent,
                    tracestate,
                })
            }),
        }
    }

    /// The value, empty for a tombstone.
    pub fn payload(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }

    /// The key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
}
