//! Moves due delayed jobs (retries, run-at jobs) to the active list, in bounded chunks, for the queues this
//! process serves; and samples the queue gauges.

use std::time::Duration;

use chrono::Utc;
use mingus_common::jobs::Enqueuer;
use mingus_common::queue::Queue;
use tokio_util::sync::CancellationToken;

/// Chunks promoted per queue per tick at most: 20 × 500 = 10,000 jobs.
const MAX_CHUNKS_PER_TICK: usize = 20;

pub async fn run(
    enqueuer: Enqueuer,
    queues: Vec<Queue>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = 0u64;
    while !stop.is_cancelled() {
        for &queue in &queues {
            for _ in 0..MAX_CHUNKS_PER_TICK {
                match enqueuer.promote_due(queue).await {
                    Ok(moved) if moved == mingus_common::jobs::enqueue::CHUNK => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(%queue, error = %err, "promotion failed; retrying next tick");
                        break;
                    }
                }
            }
        }
        if ticks.is_multiple_of(20) {
            sample_gauges(&enqueuer, &queues).await;
        }
        ticks += 1;
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn sample_gauges(enqueuer: &Enqueuer, queues: &[Queue]) {
    for &queue in queues {
        if let Ok(depth) = crate::runtime::queue_depth(enqueuer, queue).await {
            let age = depth
                .oldest_pushed_ms
                .map(|ms| Duration::from_millis((Utc::now().timestamp_millis() - ms).max(0) as u64))
                .unwrap_or_default();
            crate::metrics::queue_gauges(queue.name(), depth.waiting, depth.delayed, age);
        }
    }
}
