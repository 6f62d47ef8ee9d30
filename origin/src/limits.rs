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

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpCidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0-{max}"))?,
        };
        Ok(IpCidr { net, prefix })
    }
}

impl IpCidr {
    /// Is `ip` inside the range? (An IPv4 address written as IPv6, `::ffff:a.b.c.d`, counts as
    /// the IPv4 address.)
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The proxies (CDN edges, load balancers) whose `X-Forwarded-For` / `Forwarded` headers are
/// believed. Empty (the default): the client is the TCP peer, whatever the headers say.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpCidr>);

impl TrustedProxies {
    /// Trusts the given ranges.
    pub fn new(ranges: Vec<IpCidr>) -> Self {
        TrustedProxies(ranges)
    }

    /// Is `ip` a trusted proxy?
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client's address for a request that came from `peer`: `peer` itself unless it is a
    /// trusted proxy; then the rightmost address of `X-Forwarded-For` (all such headers, in
    /// order) that is not a trusted proxy, or, without `X-Forwarded-For`, the same in the
    /// `for=` values of `Forwarded`. Each proxy appends the address it received from, so the
    /// entries left of the first untrusted one are whatever the client chose to send and are
    /// never believed. An entry that is not an address (`unknown`, an obfuscated name, junk)
    /// stops the walk at the last trusted hop.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let xff: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let hops: Vec<&str> = if !xff.is_empty() {
            xff
        } else {
            headers
                .get_all(http::header::FORWARDED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|element| {
                    element
                        .split(';')
                        .find_map(|pair| {
                            let (k, v) = pair.trim().split_once('=')?;
                            k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                        })
                        .unwrap_or("")
                })
                .collect()
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// One hop of `X-Forwarded-For` or a `Forwarded` `for=` value: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `"[2001:db8::1]:4711"`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim().trim_matches('"');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = h.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = h.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The client address of a request, in its extensions: the TCP peer, or, when the peer is a
/// trusted proxy, the address it forwards for (see [`TrustedProxies::client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

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

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cidr_ranges() {
        let r: IpCidr = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains("10.1.2.3".parse().unwrap()));
        assert!(
            r.contains("::ffff:10.1.2.3".parse().unwrap()),
            "IPv4 written as IPv6"
        );
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        let one: IpCidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: IpCidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_client_only_behind_a_trusted_proxy() {
        let t = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let edge: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        let spoof = headers(&[("x-forwarded-for", "203.0.113.1")]);
        assert_eq!(
            t.client(stranger, &spoof),
            stranger,
            "untrusted peer: header ignored"
        );
        assert_eq!(
            t.client(edge, &spoof),
            "203.0.113.1".parse::<IpAddr>().unwrap()
        );
        // The client wrote "1.1.1.1" itself; the edge appended what it saw.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.1, 10.0.0.9")]);
        assert_eq!(
            t.client(edge, &chain),
            "203.0.113.1".parse::<IpAddr>().unwrap()
        );
        let two = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.2:5000"),
        ]);
        assert_eq!(
            t.client(edge, &two),
            "203.0.113.2".parse::<IpAddr>().unwrap()
        );
        let junk = headers(&[("x-forwarded-for", "203.0.113.1, garbage")]);
        assert_eq!(
            t.client(edge, &junk),
            edge,
            "junk stops at the last trusted hop"
        );
        assert_eq!(t.client(edge, &headers(&[])), edge);
        let fwd = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.3",
        )]);
        assert_eq!(
            t.client(edge, &fwd),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client(edge, &unknown), edge);
        assert_eq!(TrustedProxies::default().client(edge, &spoof), edge);
    }
}
