use std::io;

/// Storage errors. The broker maps each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("corrupt record batch: {0}")]
    CorruptBatch(&'static str),
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("batch of {bytes} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { bytes: usize, max: usize },
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    #[error("producer epoch {got} is older than {current}")]
    InvalidProducerEpoch { got: i16, current: i16 },
    /// A write that does not fit the producer's transaction state: a
    /// non-transactional batch while its transaction is open (Kafka's
    /// INVALID_TXN_STATE).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(&'static str),
    /// A marker from a coordinator older than one that already wrote for this
    /// producer (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error("coordinator epoch {got} is older than {current}")]
    CoordinatorFenced { got: i32, current: i32 },
    /// The partition already tracks this many open transactions; a batch
    /// that would open one more is refused until some end (retriable).
    #[error("too many open transactions on this partition (at most {max})")]
    TooManyOpenTransactions { max: usize },
    #[error("duplicate of a batch already written at offset {base_offset}")]
    DuplicateSequence { base_offset: i64 },
    /// Some records of a batch are refused (Kafka's `record_errors`): the
    /// batch index, and (record index in the batch, reason) for each.
    #[error("{message}")]
    InvalidRecords {
        batch_index: usize,
        records: Vec<(i32, &'static str)>,
        message: &'static str,
    },
    #[error("log is closed or its disk failed")]
    StorageUnavailable,
    /// A refusal another storage engine reports with its Kafka error code
    /// (for example an unknown partition found at commit time in cluster mode).
    #[error("{message}")]
    Coded { code: i16, message: String },
}

pub type Result<T> = std::result::Result<T, LogError>;
