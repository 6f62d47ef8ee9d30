//! Per-client-IP limits: open HTTP connections and held (blocking) requests per IP address.
//! Off by default: behind a CDN every viewer reaches the origin through a handful of edge
//! addresses, and a per-IP limit there would refuse real viewers. Turn them on for an origin
//! that players reach directly.
//!
//! Refusals are logged at most once a second per limit, with how many were refused since
//! the last line, so a client hammering the server cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A count per IP address with a ceiling. `max == 0`: no limit, and nothing is counted.
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    what: &'static str,
    counts: Mutex<HashMap<IpAddr, usize>>,
    log: RateLimitedLog,
}

impl PerIp {
    /// A limit of `max` per IP (`0`: none) on `what` (for the log: "connections").
    pub fn new(max: usize, what: &'static str) -> Arc<Self> {
        Arc::new(PerIp {
            max,
            what,
            counts: Mutex::new(HashMap::new()),
            log: RateLimitedLog::default(),
        })
    }

    /// Is there a limit at all?
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Counts one more for `ip` while the guard lives; `None` (refuse, logged) when `ip` is at
    /// the limit. Always a guard when there is no limit.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpGuard> {
        if self.max == 0 {
            return Some(PerIpGuard(None));
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            drop(counts);
            let max = self.max;
            let what = self.what;
            self.log.refused(|suppressed| {
                tracing::warn!(
                    %ip,
                    refused_since_last_line = suppressed,
                    "rate-limited: {ip} is at its limit of {max} {what}"
                )
            });
            return None;
        }
        *n += 1;
        Some(PerIpGuard(Some((self.clone(), ip))))
    }

    /// What `ip` holds now (0 when not counted).
    pub fn count(&self, ip: IpAddr) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }
}

/// One counted connection or held request of an IP; released when dropped.
#[derive(Debug)]
pub struct PerIpGuard(Option<(Arc<PerIp>, IpAddr)>);

impl Drop for PerIpGuard {
    fn drop(&mut self) {
        if let Some((limits, ip)) = self.0.take() {
            let mut counts = limits.counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// At most one log line a second; the lines in between are counted, and the next line says
/// how many were left out.
#[derive(Debug)]
pub struct RateLimitedLog {
    start: Instant,
    /// Milliseconds since `start` of the last line, plus one (0: never logged).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        RateLimitedLog {
            start: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl RateLimitedLog {
    /// Calls `log` with the number of events left out since the last line, unless a line was
    /// written less than a second ago (then this event is counted instead).
    pub fn refused(&self, log: impl FnOnce(u64)) {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last + 1000 {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another thread logged just now.
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        log(self.suppressed.swap(0, Ordering::Relaxed));
    }
}

tokio::task_local! {
    /// The client IP of the request being handled (set by the router from the connection's
    /// peer address), so that a held request is counted against it wherever it is held.
    pub(crate) static CLIENT_IP: IpAddr;
}

/// The IP of the request this task is handling, if the server gave one.
pub(crate) fn client_ip() -> Option<IpAddr> {
    CLIENT_IP.try_with(|ip| *ip).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_ip_and_releases_on_drop() {
        let l = PerIp::new(2, "things");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = l.acquire(a).unwrap();
        let _g2 = l.acquire(a).unwrap();
        assert!(l.acquire(a).is_none(), "third from the same IP");
        let _g3 = l.acquire(b).expect("another IP has its own count");
        drop(g1);
        assert_eq!(l.count(a), 1);
        assert!(l.acquire(a).is_some());
    }

    #[test]
    fn zero_is_no_limit() {
        let l = PerIp::new(0, "things");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let guards: Vec<_> = (0..1000).map(|_| l.acquire(a).unwrap()).collect();
        assert_eq!(guards.len(), 1000);
        assert_eq!(l.count(a), 0, "nothing counted when off");
    }

    #[test]
    fn one_line_a_second() {
        let log = RateLimitedLog::default();
        let mut lines = Vec::new();
        for _ in 0..100 {
            log.refused(|n| lines.push(n));
        }
        assert_eq!(lines, vec![0], "the first line, then silence");
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 99);
    }
}
