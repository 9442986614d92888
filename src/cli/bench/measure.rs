//! What a run measures: echo round trips, or broadcast fan-out from one sender (see the
//! module docs of `bench`), second by second, and the summary at the end.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::Events;

use super::conn::Phase;
use super::stats::cpu_time;
use super::{count, Bench, Mode};

/// In broadcast mode: the sender's messages still travelling, oldest first.
#[derive(Debug, Default)]
pub(super) struct FanOut {
    /// Send time and receivers still to get it, for messages `first..`.
    pub(super) in_flight: VecDeque<(Instant, usize)>,
    /// The sequence number of `in_flight[0]`.
    pub(super) first: u64,
    /// Per connection: how many broadcast messages it has received.
    pub(super) received: Vec<u64>,
    /// Receivers still connected.
    pub(super) live_receivers: usize,
}

impl Bench<'_> {
    pub(super) fn measure(&mut self) -> Result<ExitCode, String> {
        let mut events = Events::with_capacity(1024);
        self.measuring = true;
        let cpu_start = cpu_time();
        let start = Instant::now();
        self.kick_off();
        let mut next_tick = start + Duration::from_secs(1);
        let end = start + self.args.duration;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                let rate = self.stats.tick();
                let second = self.stats.per_second.len();
                let unit = if self.args.mode == Mode::Echo {
                    "msgs/s"
                } else {
                    "deliveries/s"
                };
                println!(
                    "[{second:>3}s] {rate} {unit}  {} up  {}",
                    count(self.open, "connection"),
                    count(self.stats.errors as usize, "error")
                );
                if next_tick >= end {
                    break;
                }
                next_tick += Duration::from_secs(1);
            }
            self.turn(
                &mut events,
                Some(next_tick.saturating_duration_since(Instant::now())),
            )?;
        }
        let wall = start.elapsed();
        let cpu = cpu_start.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
        self.report(wall, cpu);
        let errors = self.stats.errors;
        if errors > 0 {
            eprintln!(
                "wsloop bench: {} failed: {}",
                count(errors as usize, "connection"),
                self.stats.failures()
            );
        }
        self.close_all()?;
        Ok(if errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Queues the first messages.
    pub(super) fn kick_off(&mut self) {
        let now = Instant::now();
        match self.args.mode {
            Mode::Echo => {
                for key in 0..self.conns.len() {
                    for _ in 0..self.args.pipeline {
                        self.queue_send(key, now);
                    }
                    self.flush(key);
                }
            }
            Mode::Broadcast => {
                for _ in 0..self.args.pipeline {
                    self.publish(now);
                }
            }
        }
    }

    /// Queues one more copy of the connection's message; [`Bench::flush`] writes every copy
    /// queued with one system call.
    pub(super) fn queue_send(&mut self, key: usize, now: Instant) {
        if self.conns[key].phase == Phase::Open {
            self.conns[key].to_send += 1;
            self.sent_at[key].push_back(now);
        }
    }

    pub(super) fn publish(&mut self, now: Instant) {
        let Some(sender) = self.sender else { return };
        if self.fan_out.live_receivers == 0 {
            return;
        }
        self.fan_out
            .in_flight
            .push_back((now, self.fan_out.live_receivers));
        self.conns[sender].to_send += 1;
        self.flush(sender);
    }

    /// A broadcast receiver is gone: the messages still travelling no longer wait for it, and
    /// later ones are sent to one receiver fewer.
    pub(super) fn lose_receiver(&mut self, key: usize) {
        let fan = &mut self.fan_out;
        fan.live_receivers = fan.live_receivers.saturating_sub(1);
        let got = fan.received[key];
        for (i, (_, remaining)) in fan.in_flight.iter_mut().enumerate() {
            if fan.first + i as u64 >= got {
                *remaining = remaining.saturating_sub(1);
            }
        }
        self.complete_fan_out(Instant::now());
    }

    pub(super) fn on_open(&mut self, key: usize) {
        self.open += 1;
        self.stalled += usize::from(!self.conns[key].reads);
        self.connecting.opened(key, Instant::now());
        if self.args.mode == Mode::Broadcast && key == self.receivers() {
            self.sender = Some(key);
            self.fan_out.live_receivers = self.receivers();
        }
        self.flush(key);
    }

    /// Messages came back. In echo mode each must answer one in flight: more is an error (the
    /// URL is not an echo endpoint).
    pub(super) fn on_messages(&mut self, key: usize, count: usize) -> Result<(), String> {
        if let Some(hold) = self.hold.as_mut() {
            // What a non-reader took in with its 101 counts for nothing.
            if self.conns[key].reads {
                let readers = self.open - self.stalled;
                hold.arrived(&mut self.fan_out.received[key], count, readers);
            }
            return Ok(());
        }
        if !self.measuring {
            return Ok(());
        }
        let now = Instant::now();
        match self.args.mode {
            Mode::Echo => {
                for _ in 0..count {
                    let Some(sent) = self.sent_at[key].pop_front() else {
                        return Err(format!(
                            "connection {key}: more messages came back than were sent: \
                             not an echo endpoint?"
                        ));
                    };
                    self.stats.record(now - sent);
                    if !self.args.burst {
                        self.queue_send(key, now);
                    }
                }
                // A burst: the next N once all N are back.
                if self.args.burst && self.sent_at[key].is_empty() {
                    for _ in 0..self.args.pipeline {
                        self.queue_send(key, now);
                    }
                }
                // Every reply this read completed is answered with one write.
                self.flush(key);
            }
            Mode::Broadcast => {
                for _ in 0..count {
                    self.on_delivery(key, now);
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_delivery(&mut self, key: usize, now: Instant) {
        let fan = &mut self.fan_out;
        let seq = fan.received[key];
        fan.received[key] += 1;
        let Some(index) = seq.checked_sub(fan.first) else {
            return;
        };
        let Some((sent, remaining)) = fan.in_flight.get_mut(index as usize) else {
            return;
        };
        let latency = now - *sent;
        *remaining = remaining.saturating_sub(1);
        self.stats.record(latency);
        self.complete_fan_out(now);
    }

    /// Completed messages leave from the front; each frees a slot for the next one.
    pub(super) fn complete_fan_out(&mut self, now: Instant) {
        while let Some(&(_, 0)) = self.fan_out.in_flight.front() {
            self.fan_out.in_flight.pop_front();
            self.fan_out.first += 1;
            self.publish(now);
        }
    }

    pub(super) fn report(&mut self, wall: Duration, cpu: Option<Duration>) {
        let summary = self.stats.summary();
        let unit = if self.args.mode == Mode::Echo {
            "msgs/s"
        } else {
            "deliveries/s"
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let cpu_share = cpu.map(|c| c.as_secs_f64() / wall.as_secs_f64() * 100.0);
        let cpu_text = cpu_share.map_or("unknown".to_string(), |p| format!("{p:.0}% of one core"));
        println!(
            "summary: median {} {unit} | latency p50 {:.3} ms p99 {:.3} ms max {:.3} ms | {} | {} | bench cpu {cpu_text}",
            summary.median_rate,
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max),
            count(summary.total as usize, "message"),
            count(summary.errors as usize, "error")
        );
        if self.args.json {
            println!(
                "{}",
                serde_json::json!({
                    "mode": format!("{:?}", self.args.mode).to_lowercase(),
                    "connections": self.args.connections,
                    "size": self.args.size,
                    "pipeline": self.args.pipeline,
                    "burst": self.args.burst,
                    "median_rate": summary.median_rate,
                    "p50_ms": ms(summary.p50),
                    "p99_ms": ms(summary.p99),
                    "max_ms": ms(summary.max),
                    "total": summary.total,
                    "errors": summary.errors,
                    "wire_bytes_per_message": self.stats.bytes_in as f64 / summary.total.max(1) as f64,
                    "bench_cpu_percent": cpu_share,
                })
            );
        }
    }
}
