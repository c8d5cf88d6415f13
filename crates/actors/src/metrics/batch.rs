//! Finished steps on their way to the metrics actor, sent in batches.

use std::sync::{Mutex, PoisonError};

use actix::Addr;

use super::{Executed, Executions, MetricsActor};

/// Finished steps are sent to the metrics actor this many at a time (and whenever statistics
/// are asked for), not one message per request: each message wakes the supervisor's thread.
const METRICS_BATCH: usize = 256;

/// The steps the pool counted and has not sent to the metrics actor yet.
pub(crate) struct MetricsBatch {
    actor: Addr<MetricsActor>,
    pending: Mutex<Vec<Executed>>,
}

impl MetricsBatch {
    pub(crate) fn new(actor: Addr<MetricsActor>) -> Self {
        MetricsBatch { actor, pending: Mutex::default() }
    }

    /// Counts a finished (or refused) step; sends the batch when it is full.
    pub(crate) fn record(&self, executed: Executed) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push(executed);
        if pending.len() >= METRICS_BATCH {
            let batch = std::mem::take(&mut *pending);
            drop(pending);
            self.actor.do_send(Executions(batch));
        }
    }

    /// Sends the steps not sent yet, so statistics asked for next include every step answered
    /// so far.
    pub(crate) fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if !batch.is_empty() {
            self.actor.do_send(Executions(batch));
        }
    }
}
