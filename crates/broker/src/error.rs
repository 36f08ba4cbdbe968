//! Mapping of internal errors onto Kafka error codes.

use herald_log::LogError;
use kafka_protocol::ResponseError;

use crate::topic_registry::TopicError;

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of API {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("malformed request (API {api_key} v{version}): {reason}")]
    Malformed {
        api_key: i16,
        version: i16,
        reason: String,
    },
    #[error("could not encode response: {0}")]
    Encode(String),
}

pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::Io(_) | LogError::StorageUnavailable => ResponseError::KafkaStorageError.code(),
        LogError::CorruptBatch(_) => ResponseError::CorruptMessage.code(),
        LogError::InvalidRecord(_) | LogError::InvalidRecords { .. } => {
            ResponseError::InvalidRecord.code()
        }
        LogError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat.code(),
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        LogError::DuplicateSequence { .. } => ResponseError::DuplicateSequenceNumber.code(),
        LogError::InvalidTxnState(_) => ResponseError::InvalidTxnState.code(),
        LogError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced.code(),
        LogError::TooManyOpenTransactions { .. } => ResponseError::ConcurrentTransactions.code(),
        LogError::Coded { code, .. } => *code,
    }
}

pub fn topic_error_code(e: &TopicError) -> i16 {
    match e {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition.code(),
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
        TopicError::InvalidConfig(_) | TopicError::Unsupported(_) => {
            ResponseError::InvalidConfig.code()
        }
        TopicError::Storage(e) => log_error_code(e),
        TopicError::Io(_) => ResponseError::KafkaStorageError.code(),
    }
}
