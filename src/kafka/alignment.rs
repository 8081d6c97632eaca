//! [`InputQueues`]: a task's records from several input topics, released in timestamp order.
//!
//! A task that reads partition `p` of several topics (a join) must see them as they happened:
//! a stream record joins the table as of the record's time, also when the task catches up
//! after a restart and one topic's records arrive in a poll before the other's. Kafka
//! Streams buffers each input partition and always processes the record with the smallest
//! timestamp; when one input's buffer is empty it waits, as long as that partition is known
//! to have more records on the broker (KIP-695, `max.task.idle.ms = 0`). [`InputQueues`] is
//! that rule: the caller says whether an empty input is caught up (the lifecycle asks the
//! broker's watermarks), and [`InputQueues::next_run`] hands out the next run of records of
//! one input that no other input can precede.

use std::collections::VecDeque;

use crate::record::Record;

/// Buffered records per input topic of one task.
#[derive(Debug, Default)]
pub struct InputQueues {
    queues: Vec<VecDeque<Record>>,
}

impl InputQueues {
    /// Queues for `inputs` input topics.
    pub fn new(inputs: usize) -> Self {
        Self {
            queues: (0..inputs).map(|_| VecDeque::new()).collect(),
        }
    }

    /// Appends records (in offset order) of input `input`.
    pub fn push(&mut self, input: usize, records: &[Record]) {
        if let Some(queue) = self.queues.get_mut(input) {
            queue.extend(records.iter().cloned());
        }
    }

    /// Records buffered for input `input`.
    pub fn len(&self, input: usize) -> usize {
        self.queues.get(input).map_or(0, VecDeque::len)
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// The next records to process: a run of the input whose first record is the oldest,
    /// up to the first record of another input that is older. `None` when nothing is
    /// buffered, or an empty input is not `caught_up` (its older records may still come).
    pub fn next_run(
        &mut self,
        caught_up: &mut dyn FnMut(usize) -> bool,
    ) -> Option<(usize, Vec<Record>)> {
        if self.is_empty() {
            return None;
        }
        for (i, queue) in self.queues.iter().enumerate() {
            if queue.is_empty() && !caught_up(i) {
                return None;
            }
        }
        let heads: Vec<(usize, i64)> = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|r| (i, r.timestamp)))
            .collect();
        let (chosen, _) = *heads.iter().min_by_key(|(i, ts)| (*ts, *i))?;
        let bound = heads
            .iter()
            .filter(|(i, _)| *i != chosen)
            .map(|(_, ts)| *ts)
            .min()
            .unwrap_or(i64::MAX);
        let queue = &mut self.queues[chosen];
        let take = queue
            .iter()
            .take_while(|r| r.timestamp <= bound)
            .count()
            .max(1);
        Some((chosen, queue.drain(..take).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, timestamp: i64) -> Record {
        Record {
            topic: String::new(),
            partition: Some(0),
            offset,
            key: None,
            value: None,
            timestamp,
            headers: Vec::new(),
        }
    }

    fn runs(queues: &mut InputQueues, caught_up: bool) -> Vec<(usize, Vec<i64>)> {
        let mut out = Vec::new();
        while let Some((input, records)) = queues.next_run(&mut |_| caught_up) {
            out.push((input, records.iter().map(|r| r.timestamp).collect()));
        }
        out
    }

    #[test]
    fn records_of_two_inputs_come_out_in_timestamp_order() {
        let mut q = InputQueues::new(2);
        // The stream's records arrived first, but the table's are older.
        q.push(0, &[record(0, 10), record(1, 20), record(2, 30)]);
        q.push(1, &[record(0, 5), record(1, 25)]);
        assert_eq!(
            runs(&mut q, true),
            vec![
                (1, vec![5]),
                (0, vec![10, 20]),
                (1, vec![25]),
                (0, vec![30])
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn an_empty_input_that_lags_holds_the_others_back() {
        let mut q = InputQueues::new(2);
        q.push(0, &[record(0, 10)]);
        assert_eq!(
            runs(&mut q, false),
            vec![],
            "input 1 may have older records"
        );
        assert_eq!(q.len(0), 1);
        q.push(1, &[record(0, 3)]);
        // Now input 1's record comes first; then input 1 is empty and lagging again.
        assert_eq!(runs(&mut q, false), vec![(1, vec![3])]);
        assert_eq!(runs(&mut q, true), vec![(0, vec![10])]);
    }
}
