//! What a benchmark run counts: messages per second, round-trip latencies, errors, and the
//! load generator's own CPU time.

use std::time::Duration;

/// Counts for a whole run, plus the per-second rates.
#[derive(Debug, Default)]
pub struct Stats {
    /// Latency samples in nanoseconds.
    latencies: Vec<u64>,
    /// Messages completed in the current second.
    this_second: u64,
    /// Messages per second, one entry per completed second.
    pub per_second: Vec<u64>,
    /// Messages completed in the whole run.
    pub total: u64,
    /// Failed connections, protocol errors, unexpected closes.
    pub errors: u64,
    /// Why they failed, each reason once with how many times, in the order first seen.
    failures: Vec<(String, u64)>,
    /// Bytes read from the sockets while measuring (frames as they came, compressed or not).
    pub bytes_in: u64,
}

/// The end-of-run figures.
#[derive(Debug, PartialEq)]
pub struct Summary {
    /// Median of the per-second rates, the first second (warm-up) left out when there are more.
    pub median_rate: u64,
    /// Latency percentiles and maximum.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Largest latency.
    pub max: Duration,
    /// Messages completed.
    pub total: u64,
    /// Errors counted.
    pub errors: u64,
}

impl Stats {
    /// One message completed after `latency`.
    pub fn record(&mut self, latency: Duration) {
        self.latencies.push(latency.as_nanos() as u64);
        self.this_second += 1;
        self.total += 1;
    }

    /// A connection failed, for `why`.
    pub fn fail(&mut self, why: &str) {
        self.errors += 1;
        match self.failures.iter_mut().find(|(reason, _)| reason == why) {
            Some((_, times)) => *times += 1,
            None => self.failures.push((why.to_string(), 1)),
        }
    }

    /// Why connections failed, in one line: the reason alone when there is one, else each
    /// with how many connections failed for it (`3 × ...; 1 × ...`).
    pub fn failures(&self) -> String {
        match self.failures.as_slice() {
            [(why, _)] => why.clone(),
            all => (all.iter())
                .map(|(why, times)| format!("{times} × {why}"))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// Closes the current second; returns its count.
    pub fn tick(&mut self) -> u64 {
        let count = std::mem::take(&mut self.this_second);
        self.per_second.push(count);
        count
    }

    /// The figures of the run so far.
    pub fn summary(&mut self) -> Summary {
        let mut rates: Vec<u64> = self
            .per_second
            .iter()
            .copied()
            .skip(usize::from(self.per_second.len() > 1))
            .collect();
        rates.sort_unstable();
        self.latencies.sort_unstable();
        let percentile = |p: f64| -> Duration {
            if self.latencies.is_empty() {
                return Duration::ZERO;
            }
            let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
            Duration::from_nanos(self.latencies[index])
        };
        Summary {
            median_rate: rates.get(rates.len() / 2).copied().unwrap_or(0),
            p50: percentile(0.50),
            p99: percentile(0.99),
            max: percentile(1.0),
            total: self.total,
            errors: self.errors,
        }
    }
}

/// This process's user + system CPU time so far, from /proc (Linux); `None` elsewhere.
pub fn cpu_time() -> Option<Duration> {
    cpu_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User + system CPU time from the text of a /proc/PID/stat.
pub fn cpu_of_stat(stat: &str) -> Option<Duration> {
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_the_median_second_and_latency_percentiles() {
        let mut stats = Stats::default();
        for ms in 1..=100 {
            stats.record(Duration::from_millis(ms));
        }
        stats.tick(); // warm-up second: 100, left out
        for count in [10, 30, 20] {
            stats.this_second = count;
            stats.tick();
        }
        let summary = stats.summary();
        assert_eq!(summary.median_rate, 20);
        assert_eq!(summary.p50, Duration::from_millis(51));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(summary.total, 100);
    }

    #[test]
    fn failures_are_grouped_by_reason() {
        let mut stats = Stats::default();
        for _ in 0..100 {
            stats.fail("connect failed: Connection refused (os error 111)");
        }
        assert_eq!(
            stats.failures(),
            "connect failed: Connection refused (os error 111)"
        );
        stats.fail("the server closed with 1008 \"no thanks\"");
        assert_eq!(stats.errors, 101);
        assert_eq!(
            stats.failures(),
            "100 × connect failed: Connection refused (os error 111); \
             1 × the server closed with 1008 \"no thanks\""
        );
    }

    #[test]
    fn cpu_time_reads() {
        assert!(cpu_time().is_some());
    }
}
