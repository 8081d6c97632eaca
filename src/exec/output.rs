//! [`Output`]: where a task's result rows go.
//!
//! A persistent query encodes its rows for the sink topic ([`Output::Topic`]); a table's
//! query also keeps each key's latest record in a [`TableStore`], which pull queries read.
//! A source table (`CREATE SOURCE TABLE`) is materialized by a query whose output is its
//! own input records, kept in a store ([`Output::Store`]).
//! A transient query (a push or pull query of a client) hands its rows to the client
//! through a bounded channel ([`RowSink`]): when the client does not keep up and the
//! channel is full, the sink marks itself overflowed and drops further rows, and the
//! server ends that client's query with a message instead of letting memory grow. This
//! file does no I/O itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
}

/// The receiving end of a transient query's rows.
#[derive(Debug)]
pub struct RowStream {
    /// Result batches, in order (tombstones flagged for tables).
    pub receiver: mpsc::Receiver<Batch>,
    overflowed: Arc<AtomicBool>,
}

impl RowStream {
    /// Whether rows were dropped because the client was too slow.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// A channel holding up to `capacity` batches.
pub fn row_channel(capacity: usize) -> (RowSink, RowStream) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let overflowed = Arc::new(AtomicBool::new(false));
    (
        RowSink {
            sender,
            overflowed: Arc::clone(&overflowed),
        },
        RowStream {
            receiver,
            overflowed,
        },
    )
}

impl RowSink {
    /// Hands `batch` to the client; never blocks. Once the channel has been full, every later
    /// batch is dropped (the client is told and disconnected), so rows are never skipped
    /// silently in the middle of a result.
    pub fn send(&self, batch: Batch) {
        if batch.data.num_rows() == 0 || self.overflowed.load(Ordering::Relaxed) {
            return;
        }
        match self.sender.try_send(batch) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Relaxed);
            }
        }
    }
}
