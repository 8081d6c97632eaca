//! [`Output`]: where a task's result rows go.
//!
//! A persistent query encodes its rows for the sink topic ([`Output::Topic`]); a table's
//! query also keeps each key's latest record in a [`TableStore`], which pull queries read.
//! A source table (`CREATE SOURCE TABLE`) is materialized by a query whose output is its
//! own input records, kept in a store ([`Output::Store`]).
//! A transient query (a push or pull query of a client) hands its rows to the client
//! through a channel bounded in batches and in bytes ([`RowSink`]): when the client does not
//! keep up and the channel is full, the sink marks itself overflowed and drops further rows, and the
//! server ends that client's query with a message instead of letting memory grow. This
//! file does no I/O itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::Batch;
use crate::format::encode::SinkEncoder;
use crate::state::table_store::TableStore;

/// Where a pipeline's results go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Encoded for the sink topic; a table's latest records are also kept in `store`.
    Topic {
        /// Encodes rows as the sink's records.
        encoder: Box<SinkEncoder>,
        /// The table's materialized state, for pull queries.
        store: Option<Arc<TableStore>>,
    },
    /// Rows handed to a client.
    Rows(RowSink),
    /// A source table's records kept as they are, for pull queries (nothing is produced).
    Store(Arc<TableStore>),
}

/// The sending end of a transient query's rows.
#[derive(Debug, Clone)]
pub struct RowSink {
    sender: mpsc::Sender<Batch>,
    overflowed: Arc<AtomicBool>,
    /// Bytes of the batches sent and not received yet.
    buffered: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The receiving end of a transient query's rows.
#[derive(Debug)]
pub struct RowStream {
    receiver: mpsc::Receiver<Batch>,
    overflowed: Arc<AtomicBool>,
    buffered: Arc<AtomicUsize>,
}

impl RowStream {
    /// Whether rows were dropped because the client was too slow.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The next batch, waiting for it; `None` once the query is done.
    pub async fn recv(&mut self) -> Option<Batch> {
        let batch = self.receiver.recv().await?;
        self.buffered.fetch_sub(size_of(&batch), Ordering::Relaxed);
        Some(batch)
    }

    /// The next batch if one is there.
    pub fn try_recv(&mut self) -> Option<Batch> {
        let batch = self.receiver.try_recv().ok()?;
        self.buffered.fetch_sub(size_of(&batch), Ordering::Relaxed);
        Some(batch)
    }

    /// Bytes of the batches waiting to be received.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }
}

/// The memory a batch holds.
fn size_of(batch: &Batch) -> usize {
    batch.data.get_array_memory_size()
}

/// A channel holding up to `capacity` batches of at most `max_bytes` together (one larger
/// batch passes when nothing is waiting).
pub fn row_channel(capacity: usize, max_bytes: usize) -> (RowSink, RowStream) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let overflowed = Arc::new(AtomicBool::new(false));
    let buffered = Arc::new(AtomicUsize::new(0));
    (
        RowSink {
            sender,
            overflowed: Arc::clone(&overflowed),
            buffered: Arc::clone(&buffered),
            max_bytes,
        },
        RowStream {
            receiver,
            overflowed,
            buffered,
        },
    )
}

impl RowSink {
    /// Hands `batch` to the client; never blocks. Once the channel has been full (in
    /// batches or bytes), every later batch is dropped (the client is told and
    /// disconnected), so rows are never skipped silently in the middle of a result.
    pub fn send(&self, batch: Batch) {
        if batch.data.num_rows() == 0 || self.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let size = size_of(&batch);
        let waiting = self.buffered.load(Ordering::Relaxed);
        if waiting > 0 && waiting.saturating_add(size) > self.max_bytes {
            self.overflowed.store(true, Ordering::Relaxed);
            return;
        }
        self.buffered.fetch_add(size, Ordering::Relaxed);
        match self.sender.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.buffered.fetch_sub(size, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.buffered.fetch_sub(size, Ordering::Relaxed);
                self.overflowed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Whether nobody will read more rows: the client left, or fell too far behind.
    pub fn abandoned(&self) -> bool {
        self.sender.is_closed() || self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: i64) -> Batch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let column = Arc::new(Int64Array::from_iter_values(0..rows));
        Batch::stream(RecordBatch::try_new(schema, vec![column]).unwrap())
    }

    #[test]
    fn a_reader_that_falls_behind_by_more_bytes_than_allowed_overflows() {
        let one = size_of(&batch(1_000));
        let (sink, mut rows) = row_channel(1_000, 3 * one);
        for _ in 0..3 {
            sink.send(batch(1_000));
        }
        assert!(!rows.overflowed());
        assert_eq!(rows.buffered_bytes(), 3 * one);
        sink.send(batch(1_000));
        assert!(rows.overflowed() && sink.abandoned());
        // What was buffered before the overflow is still there, and nothing after it.
        let mut got = 0;
        while rows.try_recv().is_some() {
            got += 1;
        }
        assert_eq!((got, rows.buffered_bytes()), (3, 0));
        sink.send(batch(1));
        assert!(rows.try_recv().is_none());
    }

    #[test]
    fn one_large_batch_passes_when_nothing_waits_and_a_gone_reader_abandons() {
        let (sink, mut rows) = row_channel(10, 1);
        sink.send(batch(100));
        assert!(!rows.overflowed());
        assert!(rows.try_recv().is_some());
        drop(rows);
        assert!(sink.abandoned());
    }
}
