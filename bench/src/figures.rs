//! One measured side's per-run figures (throughput, p50, p99) and their medians.

use crate::{Report, median};

#[derive(Debug, Default)]
pub struct Figures {
    rates: Vec<f64>,
    p50s: Vec<f64>,
    p99s: Vec<f64>,
}

impl Figures {
    pub fn add(&mut self, report: &Report) {
        self.rates.push(report.rate);
        self.p50s.push(report.p50_ms);
        self.p99s.push(report.p99_ms);
    }

    /// The median throughput (requests per second).
    pub fn rate(&self) -> f64 {
        median(self.rates.clone())
    }

    /// The median p50 latency, ms.
    pub fn p50(&self) -> f64 {
        median(self.p50s.clone())
    }

    /// The median p99 latency, ms.
    pub fn p99(&self) -> f64 {
        median(self.p99s.clone())
    }
}
