//! The shared UDP socket: one task reads it and hands each datagram to its session's queue.
//!
//! Which session a datagram belongs to is [`Routes::route`], without I/O: a STUN binding
//! request names its session in the ICE username (our per-session ufrag), and the address
//! it came from is remembered for that session; any other datagram (DTLS, SRTP, SRTCP)
//! goes to the session that owns its source address. A publisher whose address changes
//! (a NAT rebinding, another candidate) is followed by its next binding request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::session::Datagram;
use super::stun::stun_local_ufrag;
use super::Whip;

/// Largest datagram read (WebRTC keeps packets under the path MTU, about 1200 bytes).
const MAX_DATAGRAM: usize = 2048;

/// The routing table: sessions (any `T`, the dispatcher's is the session's queue) by ICE
/// ufrag, and the ufrag each known source address belongs to.
#[derive(Debug)]
pub struct Routes<T> {
    by_ufrag: HashMap<String, T>,
    by_addr: HashMap<SocketAddr, String>,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Routes {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
        }
    }
}

impl<T> Routes<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the session whose local ICE ufrag is `ufrag`.
    pub fn add(&mut self, ufrag: String, session: T) {
        self.by_ufrag.insert(ufrag, session);
    }

    /// Removes a session and every address routed to it.
    pub fn remove(&mut self, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
        self.by_addr.retain(|_, u| u != ufrag);
    }

    /// Sessions in the table.
    pub fn len(&self) -> usize {
        self.by_ufrag.len()
    }

    /// Is the table empty?
    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty()
    }

    /// The session `datagram` from `source` belongs to, if any (see the module docs). A
    /// binding request for a known session routes `source` to it from now on.
    pub fn route(&mut self, datagram: &[u8], source: SocketAddr) -> Option<&T> {
        match stun_local_ufrag(datagram) {
            Some(ufrag) => {
                let (ufrag, session) = self.by_ufrag.get_key_value(ufrag)?;
                self.by_addr.insert(source, ufrag.clone());
                Some(session)
            }
            None => self.by_addr.get(&source).and_then(|u| self.by_ufrag.get(u)),
        }
    }
}

/// How often at most a recurring datagram problem (strangers' datagrams, a session not keeping
/// up) is logged; `/metrics` counts every occurrence.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Keeps a recurring event from filling the log: the first occurrence is logged at once, then
/// at most one line per period, carrying how many occurred since the previous line. Pure: the
/// caller passes the time.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last_line: Option<Instant>,
    since: u64,
}

impl LogLimit {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Self {
        LogLimit {
            every,
            last_line: None,
            since: 0,
        }
    }

    /// Counts one occurrence at `now`. `Some(n)` when it should be logged: `n` occurrences
    /// (this one included) since the previous line.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        let due = self
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every);
        if !due {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// Reads the shared socket until the endpoint is gone and routes each datagram to its
/// session. Datagrams are read into one growing buffer and handed on as slices of it.
pub(crate) async fn run(whip: std::sync::Weak<Whip>, socket: Arc<UdpSocket>) {
    let mut buf = BytesMut::with_capacity(64 * MAX_DATAGRAM);
    let mut unknown = LogLimit::new(LOG_EVERY);
    let mut dropped = LogLimit::new(LOG_EVERY);
    loop {
        if buf.capacity() < MAX_DATAGRAM {
            // The datagrams handed on keep the old buffer alive; read into a new one.
            buf = BytesMut::with_capacity(64 * MAX_DATAGRAM);
        }
        let (_, source) = match socket.recv_buf_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from a gone peer surface here on some systems: not fatal.
                tracing::debug!("WHIP UDP receive: {e}");
                buf.clear();
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let data = buf.split().freeze();
        let Some(whip) = whip.upgrade() else { return };
        let tx = whip
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .route(&data, source)
            .cloned();
        match tx {
            Some(tx) => {
                let d = Datagram {
                    source,
                    data,
                    at: Instant::now(),
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(d) {
                    whip.stats
                        .datagrams_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(n) = dropped.hit(Instant::now()) {
                        tracing::warn!(%source, dropped = n, "a WHIP session is not keeping up: datagrams dropped (`dropped` since the previous such line; llhls_whip_datagrams_dropped_total counts them all; logged at most once a minute)");
                    }
                }
            }
            None => {
                whip.stats
                    .datagrams_unknown
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(n) = unknown.hit(Instant::now()) {
                    tracing::warn!(%source, datagrams = n, "datagrams from addresses with no WHIP session: ignored (scans, or a publisher whose address changed; `datagrams` since the previous such line; llhls_whip_datagrams_unknown_total counts them all; logged at most once a minute)");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limit_logs_the_first_then_one_line_a_period_with_the_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = LogLimit::new(Duration::from_secs(60));
        assert_eq!(l.hit(at(0)), Some(1), "the first occurrence is logged");
        // A flood: 10 000 datagrams within the minute, none logged.
        for i in 1..=10_000 {
            assert_eq!(l.hit(at(i * 5)), None);
        }
        // The next one after the minute carries the flood's count and itself.
        assert_eq!(l.hit(at(60_000)), Some(10_001));
        assert_eq!(l.hit(at(60_001)), None);
        // After a quiet spell, the next one is logged at once.
        assert_eq!(l.hit(at(600_000)), Some(2));
    }

    /// A STUN binding request with the ICE username `user`.
    fn binding_request(user: &[u8]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        let mut attrs = vec![0x00, 0x06, 0, user.len() as u8];
        attrs.extend_from_slice(user);
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        m[2..4].copy_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn binding_requests_route_addresses_and_follow_a_rebinding() {
        let mut r = Routes::new();
        r.add("aaaa".to_string(), 1);
        r.add("bbbb".to_string(), 2);
        let (x, y): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:6000".parse().unwrap(),
        );
        let srtp = [0x80u8, 0x60, 0, 1];
        assert_eq!(r.route(&srtp, x), None, "unknown address");
        assert_eq!(
            r.route(&binding_request(b"cccc:zz"), x),
            None,
            "unknown ufrag"
        );
        assert_eq!(r.route(&srtp, x), None, "an unknown ufrag routes nothing");
        assert_eq!(r.route(&binding_request(b"aaaa:zz"), x), Some(&1));
        assert_eq!(r.route(&srtp, x), Some(&1));
        assert_eq!(r.route(&srtp, y), None);
        // The publisher moves to another address.
        assert_eq!(r.route(&binding_request(b"aaaa:zz"), y), Some(&1));
        assert_eq!(r.route(&srtp, y), Some(&1));
        // Another session claims an address (a NAT reusing a port).
        assert_eq!(r.route(&binding_request(b"bbbb:zz"), x), Some(&2));
        assert_eq!(r.route(&srtp, x), Some(&2));
        r.remove("aaaa");
        assert_eq!(r.route(&srtp, y), None);
        assert_eq!(r.route(&srtp, x), Some(&2));
        assert_eq!(r.len(), 1);
        assert!(
            r.route(&[], x).is_some(),
            "empty datagrams route by address"
        );
    }
}
