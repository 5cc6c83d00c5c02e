//! Group commit / grouped reads: several flush tasks share one queue; each takes whatever is waiting.

use tokio::sync::{Mutex, mpsc};

/// The next batch: waits for one item, then takes up to `max` − 1 more that are already waiting
/// (no timer, so a lone item goes at once). `None` once every sender is gone. The receiver stays locked
/// only while gathering, so while one flusher writes its batch the next gathers what arrives meanwhile.
pub async fn next_batch<T>(receiver: &Mutex<mpsc::Receiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut receiver = receiver.lock().await;
    let mut batch = Vec::with_capacity(max);
    batch.push(receiver.recv().await?);
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}
