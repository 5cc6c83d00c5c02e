//! Moves due delayed jobs (retries, run-at jobs) to the active list, in bounded chunks, for the queues this
//! process serves. (Queue depths are the API's metrics, sampled when scraped.)

use std::time::Duration;

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
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
