//! Named counters: every outcome of every actor is counted under a name (`churn_upgrades`,
//! `garbage_pre_closed_by_server`, ...); the final report prints them all.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Named counters; an actor's every outcome is one of them.
#[derive(Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn add(&self, key: &str, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key.to_string()).or_default() += n;
    }

    pub fn inc(&self, key: &str) {
        self.add(key, 1);
    }

    pub fn max(&self, key: &str, value: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let slot = counts.entry(key.to_string()).or_default();
        *slot = (*slot).max(value);
    }

    pub fn get(&self, key: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
