//! Redis key names of one queue. apalis-redis owns `active`, `data`, `meta:*`, `inflight:*`, `done`,
//! `workers`…; `delayed` and `paused` are ours: delayed jobs never enter apalis' `scheduled` set, whose
//! unchunked promotion kills every worker above ~8,000 due jobs (NOTES-apalis defect 2).

use crate::queue::Queue;

#[derive(Debug, Clone)]
pub struct QueueKeys {
    pub queue: Queue,
    /// `<prefix>:<queue>`: the apalis queue name, and the prefix of every key below.
    pub name: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, queue: Queue) -> Self {
        Self {
            queue,
            name: super::redis_queue_name(prefix, queue),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.name)
    }

    pub fn active(&self) -> String {
        self.key("active")
    }
    pub fn data(&self) -> String {
        self.key("data")
    }
    pub fn meta_prefix(&self) -> String {
        self.key("meta")
    }
    pub fn meta(&self, task_id: &str) -> String {
        format!("{}:meta:{task_id}", self.name)
    }
    pub fn signal(&self) -> String {
        self.key("signal")
    }
    pub fn scheduled(&self) -> String {
        self.key("scheduled")
    }
    pub fn done(&self) -> String {
        self.key("done")
    }
    pub fn dead(&self) -> String {
        self.key("dead")
    }
    pub fn workers(&self) -> String {
        self.key("workers")
    }
    pub fn inflight_prefix(&self) -> String {
        self.key("inflight")
    }
    pub fn idempotency_prefix(&self) -> String {
        self.key("idempotency")
    }
    /// Ours: jobs to run later (retries, run_at), promoted in chunks.
    pub fn delayed(&self) -> String {
        self.key("delayed")
    }
    /// Ours: present while an operator has paused the queue.
    pub fn paused(&self) -> String {
        self.key("paused")
    }
    /// Ours: when each finished task id was acknowledged, for bounded incremental retention.
    pub fn finished_index(&self) -> String {
        self.key("finished")
    }
}
