//! The Kafka side of capture: a transactional writer and the compacted topic of committed
//! positions.

pub mod offsets;
pub mod writer;

/// librdkafka client context that reports errors through `tracing` at the right level and
/// stays quiet about the end-of-partition events readers ask for.
#[derive(Default)]
pub struct QuietContext;

impl rdkafka::client::ClientContext for QuietContext {
    fn error(&self, error: RdError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::warn!(%error, reason, "librdkafka");
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// Another instance with the same capture name took over (its `init_transactions` bumped
    /// the producer epoch). This instance must stop: the other one owns the stream now.
    #[error(
        "fenced: another rowferry-capture with the same name ({transactional_id}) has taken over; \
         this instance stops. Run one instance per capture name"
    )]
    Fenced { transactional_id: String },
    /// A record exceeds the size limit.
    #[error(
        "record for {table} key {key} is {size} bytes, above kafka.max_record_bytes ({limit}); \
         raise the topic's max.message.bytes and kafka.max_record_bytes, or set \
         output.large_record_policy to `truncate` or `dead-letter`"
    )]
    RecordTooLarge {
        table: String,
        key: String,
        size: usize,
        limit: usize,
    },
    /// The broker is unreachable or an operation timed out; retrying can help.
    #[error("Kafka at {bootstrap} failed: {detail} (will retry)")]
    Transient { bootstrap: String, detail: String },
    /// Anything else: the producer cannot continue.
    #[error("Kafka at {bootstrap} failed: {detail}")]
    Fatal { bootstrap: String, detail: String },
}

impl KafkaError {
    /// Classifies an rdkafka error.
    pub fn from_rdkafka(error: &RdError, bootstrap: &str, transactional_id: &str) -> Self {
        let code = error.rdkafka_error_code();
        let fenced = matches!(
            code,
            Some(RDKafkaErrorCode::Fenced)
                | Some(RDKafkaErrorCode::ProducerFenced)
                | Some(RDKafkaErrorCode::InvalidProducerEpoch)
        );
        if fenced || error.to_string().to_ascii_lowercase().contains("fenced") {
            return KafkaError::Fenced {
                transactional_id: transactional_id.to_owned(),
            };
        }
        let fatal = match error {
            RdError::Transaction(e) => e.is_fatal(),
            _ => code == Some(RDKafkaErrorCode::Fatal),
        };
        let detail = error.to_string();
        if fatal {
            KafkaError::Fatal {
                bootstrap: bootstrap.to_owned(),
                detail,
            }
        } else {
            KafkaError::Transient {
                bootstrap: bootstrap.to_owned(),
                detail,
            }
        }
    }

    /// Classifies the producer's fatal error.
    pub fn from_fatal(
        code: RDKafkaErrorCode,
        reason: &str,
        bootstrap: &str,
        transactional_id: &str,
    ) -> Self {
        let fenced = matches!(
            code,
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        ) || reason.to_ascii_lowercase().contains("fenced");
        if fenced {
            KafkaError::Fenced {
                transactional_id: transactional_id.to_owned(),
            }
        } else {
            KafkaError::Fatal {
                bootstrap: bootstrap.to_owned(),
                detail: format!("{code}: {reason}"),
            }
        }
    }

    /// Whether restarting from the last committed position can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, KafkaError::Transient { .. })
    }
}
