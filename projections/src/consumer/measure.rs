//! What the consumers export through the `metrics` facade: per group and projection, how far
//! behind the newest event applied was (seconds) and its position (from which the scrape
//! derives the lag in events); batch sizes; deliveries parked and requeued.
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::Utc;
use event_store::StoredEvent;

use super::Projections;

/// Per (group, projection): the highest global position this process has applied.
type Applied = HashMap<(String, &'static str), i64>;

fn applied_map() -> &'static Mutex<Applied> {
    static APPLIED: OnceLock<Mutex<Applied>> = OnceLock::new();
    APPLIED.get_or_init(Default::default)
}

/// Records a batch (or a single delivery) that committed.
pub(super) fn applied(group: &str, projections: &Projections, events: &[StoredEvent]) {
    metrics::histogram!("b2b_projector_batch_size", "group" => group.to_owned())
        .record(events.len() as f64);
    let now = Utc::now();
    for projection in projections {
        let newest = events
            .iter()
            .filter(|e| projection.handles(&e.aggregate_type))
            .max_by_key(|e| e.global_position);
        let Some(newest) = newest else { continue };
        let lag = (now - newest.recorded_at).num_milliseconds().max(0) as f64 / 1_000.0;
        let labels = [
            ("group", group.to_owned()),
            ("projection", projection.name().to_owned()),
        ];
        metrics::gauge!("b2b_projection_lag_seconds", &labels).set(lag);
        metrics::counter!("b2b_projection_events_applied_total", &labels)
            .increment(events.len() as u64);
        if let Ok(mut applied) = applied_map().lock() {
            let position = applied
                .entry((group.to_owned(), projection.name()))
                .or_default();
            *position = (*position).max(newest.global_position);
        }
    }
}

/// A delivery settled other than by an ack.
pub(super) fn settled_badly(group: &str, parked: bool) {
    let name = match parked {
        true => "b2b_projector_parked_total",
        false => "b2b_projector_requeued_total",
    };
    metrics::counter!(name, "group" => group.to_owned()).increment(1);
}

/// Per group and projection, the highest global position this process applied: the scrape
/// reports the store's last position minus it as the lag in events. Queues are applied
/// independently, so this is the lag of the most advanced queue; a queue behind the others
/// shows in `b2b_projection_lag_seconds`.
pub fn applied_positions() -> Vec<(String, &'static str, i64)> {
    applied_map().lock().map_or_else(
        |_| Vec::new(),
        |applied| {
            applied
                .iter()
                .map(|((group, projection), position)| (group.clone(), *projection, *position))
                .collect()
        },
    )
}
