//! The queues of DESIGN §3. Each can be served by its own worker processes (`mingus-worker --queues`).

use std::fmt;
use std::str::FromStr;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Queue {
    StripeEvents,
    Billing,
    Usage,
    Analytics,
    Maintenance,
    Email,
    Reports,
    Bench,
}

impl Queue {
    pub const ALL: [Queue; 8] = [
        Queue::StripeEvents,
        Queue::Billing,
        Queue::Usage,
        Queue::Analytics,
        Queue::Maintenance,
        Queue::Email,
        Queue::Reports,
        Queue::Bench,
    ];

    /// The queue name of the contract (also the apalis-redis queue name, under the key prefix).
    pub const fn name(self) -> &'static str {
        match self {
            Queue::StripeEvents => "stripe-events",
            Queue::Billing => "billing",
            Queue::Usage => "usage",
            Queue::Analytics => "analytics",
            Queue::Maintenance => "maintenance",
            Queue::Email => "email",
            Queue::Reports => "reports",
            Queue::Bench => "bench",
        }
    }

    /// Parses a `--queues a,b` list; empty means every queue. Duplicates are ignored.
    pub fn parse_list(raw: &str) -> Result<Vec<Queue>, UnknownQueue> {
        let mut queues: Vec<Queue> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Queue::from_str)
            .collect::<Result<_, _>>()?;
        if queues.is_empty() {
            queues = Queue::ALL.to_vec();
        }
        queues.sort();
        queues.dedup();
        Ok(queues)
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown queue {0:?}; known queues: stripe-events, billing, usage, analytics, maintenance, email, reports, bench"
)]
pub struct UnknownQueue(pub String);

impl FromStr for Queue {
    type Err = UnknownQueue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Queue::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| UnknownQueue(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_parse() {
        for queue in Queue::ALL {
            assert_eq!(queue.name().parse::<Queue>().unwrap(), queue);
        }
        assert_eq!(Queue::parse_list("").unwrap(), Queue::ALL.to_vec());
        assert_eq!(
            Queue::parse_list("email, billing,email").unwrap(),
            vec![Queue::Billing, Queue::Email]
        );
        let err = Queue::parse_list("email,mail").unwrap_err();
        assert!(err.to_string().contains("\"mail\""), "{err}");
    }
}
