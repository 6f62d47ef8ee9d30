//! Several llhls nodes behind one name (`--cluster-redis`): who owns which stream lives in
//! Redis. The node a publisher reaches claims `live/NAME` with a lease (`SET NX PX`) and renews
//! it every second while the stream is live there (its reconnect grace included); a publish of
//! a name another node holds is refused like a duplicate. A node that dies stops renewing: its
//! leases expire within [`LEASE`] and the publisher's reconnect, to any node, takes the stream
//! over. Each renewal also stores the stream's last media sequence number, and a takeover
//! starts above it (plus what the old node may have published since), so no URI is ever
//! reused with other bytes. Viewer requests for a stream another node owns are proxied to it
//! (`llhls_origin::cluster`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use llhls_ingest::streams::{ClusterClaim, Continuation, PublishError, Streams};
use llhls_origin::cluster::{BoxFuture, Cluster};
use llhls_origin::Origin;

/// How long a node's claim on a stream lasts without a renewal.
pub const LEASE: Duration = Duration::from_secs(3);
/// How often the node renews its claims.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Redis round trips that take longer fail (a publish is then refused, a lookup answered here).
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a looked-up owner is trusted before asking Redis again; nobody-owns-it answers
/// are kept shorter, so a stream that starts elsewhere is found quickly.
const OWNER_TTL: Duration = Duration::from_millis(1000);
const NO_OWNER_TTL: Duration = Duration::from_millis(250);

fn owner_key(name: &str) -> String {
    format!("llhls:owner:live/{name}")
}

fn msn_key(name: &str) -> String {
    format!("llhls:msn:live/{name}")
}

/// Renews the lease when it is ours, takes it again when it expired: 1 = ours, 0 = another
/// node's.
const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
    if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    return 0";
/// Deletes the lease only when it is still ours.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// This node's view of the cluster.
pub struct RedisCluster {
    client: redis::Client,
    advertise: String,
    origin: Arc<Origin>,
    /// Streams this node holds a lease for.
    owned: Mutex<HashSet<String>>,
    /// Owners looked up recently (for proxying).
    owners: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// For claims, which come from synchronous code.
    sync: Mutex<Option<redis::Connection>>,
    aio: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl RedisCluster {
    /// Connects to Redis at `url` (checked now: a node that cannot reach it does not start).
    pub async fn connect(
        url: &str,
        advertise: String,
        origin: Arc<Origin>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url).with_context(|| format!("cluster_redis {url}"))?;
        let c = Arc::new(RedisCluster {
            client,
            advertise,
            origin,
            owned: Mutex::new(HashSet::new()),
            owners: Mutex::new(HashMap::new()),
            sync: Mutex::new(None),
            aio: tokio::sync::Mutex::new(None),
        });
        let _: String = c
            .query(&redis::cmd("PING"))
            .await
            .with_context(|| format!("cannot reach Redis at {url} (cluster_redis)"))?;
        Ok(c)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let mut slot = self.aio.lock().await;
        if slot.is_none() {
            let con = tokio::time::timeout(
                REDIS_TIMEOUT,
                self.client.get_multiplexed_async_connection(),
            )
            .await
            .context("connecting to Redis timed out")??;
            *slot = Some(con);
        }
        let mut con = slot.clone().context("no connection")?;
        drop(slot);
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(&mut con)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                *self.aio.lock().await = None;
                Err(e.into())
            }
            Err(_) => {
                *self.aio.lock().await = None;
                anyhow::bail!("Redis did not answer within {REDIS_TIMEOUT:?}")
            }
        }
    }

    fn query_sync<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let mut slot = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let con = self.client.get_connection_with_timeout(REDIS_TIMEOUT)?;
            con.set_read_timeout(Some(REDIS_TIMEOUT))?;
            con.set_write_timeout(Some(REDIS_TIMEOUT))?;
            *slot = Some(con);
        }
        let con = slot.as_mut().context("no connection")?;
        let r = cmd.query::<T>(con);
        if r.is_err() {
            *slot = None;
        }
        Ok(r?)
    }

    /// Claims `name`: Ok(where to continue) when this node now owns it, Err(owner) when
    /// another node does.
    fn try_claim(&self, name: &str) -> anyhow::Result<Result<Option<Continuation>, String>> {
        let lease_ms = LEASE.as_millis() as u64;
        let ours: i64 = self.query_sync(
            redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(owner_key(name))
                .arg(&self.advertise)
                .arg(lease_ms),
        )?;
        if ours != 1 {
            let owner: Option<String> = self.query_sync(redis::cmd("GET").arg(owner_key(name)))?;
            return Ok(Err(owner.unwrap_or_default()));
        }
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let last: Option<String> = self.query_sync(redis::cmd("GET").arg(msn_key(name)))?;
        Ok(Ok(last
            .as_deref()
            .and_then(parse_last)
            .map(|l| continuation(&l, unix_ms()))
            // Values no stream of ours reaches (a foreign or damaged entry): start as a new
            // stream (the wall clock's MSN) rather than refuse the publish.
            .filter(|c| {
                c.msn <= llhls_packager::MAX_FIRST_MSN
                    && c.discontinuity_sequence <= llhls_packager::MAX_FIRST_MSN
            })))
    }

    /// Where this node is in stream `name`, if it has it.
    fn last_published(&self, name: &str) -> Option<Last> {
        last_published(&self.origin, name)
    }

    /// Renews this node's leases every second and stores each stream's last MSN; releases a
    /// lease once its stream has ended here.
    pub fn spawn_renewal(self: &Arc<Self>, streams: Arc<Streams>) {
        let c = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let names: Vec<String> = c
                    .owned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                for name in names {
                    if let Err(e) = c.renew(&streams, &name).await {
                        tracing::warn!(stream = %name, "cluster: renewing the claim failed: {e:#}");
                    }
                }
            }
        });
    }

    async fn renew(&self, streams: &Streams, name: &str) -> anyhow::Result<()> {
        if let Some(last) = self.last_published(name) {
            // Kept for a minute after the last renewal: the window in which a takeover
            // continues from it (later, the wall-clock start of MSNs is above it anyway) and
            // viewers are told the stream is moving.
            let _: () = self
                .query(
                    redis::cmd("SET")
                        .arg(msn_key(name))
                        .arg(last.to_string())
                        .arg("EX")
                        .arg(60),
                )
                .await?;
        }
        if !streams.is_claimed(name) {
            // The stream ended here: give the name back at once (it is not moving anywhere).
            let _: i64 = self.query(redis::cmd("DEL").arg(msn_key(name))).await?;
            let _: i64 = self
                .query(
                    redis::cmd("EVAL")
                        .arg(RELEASE)
                        .arg(1)
                        .arg(owner_key(name))
                        .arg(&self.advertise),
                )
                .await?;
            self.owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            tracing::info!(stream = %name, "cluster: stream ended here, claim released");
            return Ok(());
        }
        let ours: i64 = self
            .query(
                redis::cmd("EVAL")
                    .arg(RENEW)
                    .arg(1)
                    .arg(owner_key(name))
                    .arg(&self.advertise)
                    .arg(LEASE.as_millis() as u64),
            )
            .await?;
        if ours != 1 {
            tracing::warn!(stream = %name, "cluster: another node holds this stream's claim now (this node missed its renewals)");
        }
        Ok(())
    }
}

/// Where this server is in stream `name`, if it has it.
pub(crate) fn last_published(origin: &Origin, name: &str) -> Option<Last> {
    let s = origin.stream(name)?;
    let p = s.current()?;
    let r = p.snapshot.renditions.first()?;
    let msn = r.open.as_ref().map(|o| o.msn).or(r.last_msn())?;
    let renditions = &p.snapshot.renditions;
    Some(Last {
        msn,
        // Every segment in the window may start a discontinuity: an upper bound.
        discontinuity_sequence: renditions
            .iter()
            .map(|r| r.discontinuity_sequence + r.segments.len() as u64 + 1)
            .max()?,
        min_segment_ms: renditions
            .iter()
            .filter_map(|r| shortest_regular_segment_ms(&r.segments))
            .min()
            .unwrap_or(100),
        avg_segment_ms: {
            let (n, sum) = r
                .segments
                .iter()
                .fold((0u64, 0.0), |(n, sum), s| (n + 1, sum + s.duration));
            if n == 0 {
                1000
            } else {
                (sum * 1000.0 / n as f64) as u64
            }
        },
        stored_ms: unix_ms(),
        bridge: seen_segment(r),
    })
}

/// The newest segment of `r` players know: the open one once it has a part, else the last
/// complete one. Its MSN, date (Unix milliseconds) and discontinuity sequence number.
fn seen_segment(r: &llhls_packager::RenditionSnapshot) -> Option<(u64, u64, u64)> {
    let discontinuities = r.segments.iter().filter(|s| s.discontinuity).count() as u64;
    let ds = r.discontinuity_sequence + discontinuities;
    let date = |w: llhls_packager::WallClock| u64::try_from(w.0).ok();
    match (r.open.as_ref(), r.segments.last()) {
        (Some(o), _) if !o.parts.is_empty() => Some((
            o.msn,
            date(o.program_date_time)?,
            ds + u64::from(o.discontinuity),
        )),
        (_, Some(s)) => Some((s.msn, date(s.program_date_time)?, ds)),
        _ => None,
    }
}

/// Where a node is in a stream, as stored in Redis at each renewal (or by a single server in
/// its `data_dir`, see `positions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Last {
    /// The last media sequence number published.
    msn: u64,
    /// No segment's discontinuity sequence number is above this.
    discontinuity_sequence: u64,
    /// The shortest segment in the window (milliseconds).
    min_segment_ms: u64,
    /// The segments' mean duration (milliseconds).
    avg_segment_ms: u64,
    /// When this was stored (Unix milliseconds).
    pub(crate) stored_ms: u64,
    /// The last segment players have seen (the open one once it has a part): MSN, date
    /// (Unix milliseconds), discontinuity sequence number. Absent in positions stored by
    /// older versions.
    bridge: Option<(u64, u64, u64)>,
}

impl std::fmt::Display for Last {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.msn,
            self.discontinuity_sequence,
            self.min_segment_ms,
            self.avg_segment_ms,
            self.stored_ms
        )?;
        if let Some((msn, pdt_ms, ds)) = self.bridge {
            write!(f, " {msn} {pdt_ms} {ds}")?;
        }
        Ok(())
    }
}

/// The stored `MSN DISCONTINUITY-SEQUENCE MIN-SEGMENT-MS AVG-SEGMENT-MS STORED-MS [SEEN-MSN
/// SEEN-DATE-MS SEEN-DISCONTINUITY-SEQUENCE]` of a stream.
pub(crate) fn parse_last(v: &str) -> Option<Last> {
    let n: Vec<u64> = v
        .split_whitespace()
        .map(|x| x.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (head, bridge) = match n[..] {
        [a, b, c, d, e] => ([a, b, c, d, e], None),
        // A seen MSN above the last one is not a position this server writes.
        [a, b, c, d, e, m, t, ds] if m <= a => ([a, b, c, d, e], Some((m, t, ds))),
        _ => return None,
    };
    let [msn, discontinuity_sequence, min_segment_ms, avg_segment_ms, stored_ms] = head;
    Some(Last {
        msn,
        discontinuity_sequence,
        min_segment_ms,
        avg_segment_ms,
        stored_ms,
        bridge,
    })
}

/// The shortest segment of a window that did not end at a stall or a discontinuity, in
/// milliseconds (the window's shortest of all when every one did).
///
/// Bounds how many segments a node can open between two stores of its position. A segment
/// cut short by a stall (the next is GAP) or by a reconnect (the next starts a discontinuity)
/// is not a pace the stream keeps: counting one made a takeover skip 20 MSNs where 3 would do,
/// and hls.js, placing the new segments by their MSNs, waited 40 s ahead of its playhead.
fn shortest_regular_segment_ms(segments: &llhls_packager::playlist::Segments) -> Option<u64> {
    let ms = |s: &llhls_packager::playlist::SegmentEntry| (s.duration * 1000.0) as u64;
    segments
        .iter()
        .zip(segments.iter().skip(1))
        .filter(|(a, b)| !a.gap && !b.gap && !b.discontinuity)
        .map(|(a, _)| ms(a))
        .min()
        .or_else(|| segments.iter().map(ms).min())
}

/// Where a stream taken over from the node that stored `l` starts, at Unix time `now_ms`.
///
/// Two bounds. No URI may be reused: the old node renews (and stores) every second, so after
/// its last store it can have opened at most two seconds' worth of its shortest segments more
/// (a late renewal included). And players that place a playlist by its MSNs must find the new
/// segments where the wall clock puts them, never ahead: hls.js, finding no segment in common
/// with the playlist it had, places the new first segment at the old start plus the MSN
/// difference times the mean segment duration; placed ahead of the playhead by more than it
/// skips (2 s), it waits there for good, while placed at or a little behind, it loads from
/// where its buffer ends. So the MSNs go on at the old node's mean pace, and no less than the
/// first bound.
/// How long a continued stream's publisher may take from the claim to its first frame, for the
/// bridge's MSN count ([`continuation`]).
const BRIDGE_MARGIN_MS: u64 = 4_000;

pub(crate) fn continuation(l: &Last, now_ms: u64) -> Continuation {
    let opened_since = (2 * RENEW_EVERY.as_millis() as u64).div_ceil(l.min_segment_ms.max(100));
    let paced = now_ms.saturating_sub(l.stored_ms) / l.avg_segment_ms.max(100);
    let mut msn = l.msn.saturating_add(paced.max(opened_since + 1));
    if let Some((seen, date_ms, _)) = l.bridge {
        // The bridge spans the wall-clock time from the seen segment's date to the new run's
        // first frame with one GAP segment per MSN between, none longer than TARGETDURATION:
        // enough MSNs for that time and a few seconds for the publisher to come back, at 90%
        // of the old mean segment each (fewer, capped at TARGETDURATION, would place the new
        // segments earlier on players' timelines than their dates: behind a player that had
        // played on into the old run's last segments, which then waits there; more would
        // crowd the window, which must still list the seen segment in the first playlist).
        let span_ms = now_ms
            .saturating_sub(date_ms)
            .saturating_add(BRIDGE_MARGIN_MS);
        let per_msn = (l.avg_segment_ms * 9 / 10).max(100);
        msn = msn.max(seen.saturating_add(span_ms.div_ceil(per_msn)));
    }
    // With the segment players last saw, the new run re-lists it and the MSNs up to its own as
    // GAP (`llhls_packager::Bridge`) under that segment's discontinuity sequence number (what
    // players saw the old run's later MSNs under, unless it had a discontinuity in its last
    // second), and starts one above it.
    let bridge = l.bridge.and_then(|(seen, date_ms, ds)| {
        (seen < msn).then_some(llhls_packager::Bridge {
            msn: seen,
            program_date_time: llhls_packager::WallClock(i64::try_from(date_ms).ok()?),
            discontinuity_sequence: ds,
        })
    });
    Continuation {
        msn,
        discontinuity_sequence: match bridge {
            Some(b) => b.discontinuity_sequence.saturating_add(1),
            None => l.discontinuity_sequence.saturating_add(1),
        },
        bridge,
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs blocking Redis I/O from synchronous code that may be on a runtime worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl ClusterClaim for RedisCluster {
    fn claim(&self, name: &str) -> Result<Option<Continuation>, PublishError> {
        match blocking(|| self.try_claim(name)) {
            Ok(Ok(continues)) => {
                tracing::info!(stream = %name, node = %self.advertise, ?continues, "cluster: this node owns the stream");
                Ok(continues)
            }
            Ok(Err(owner)) => {
                tracing::warn!(stream = %name, %owner, "publish refused: another node has this stream");
                Err(PublishError::Duplicate(name.to_string()))
            }
            Err(e) => {
                tracing::warn!(stream = %name, "publish refused: the cluster's Redis is unreachable: {e:#}");
                Err(PublishError::Duplicate(name.to_string()))
            }
        }
    }
}

impl Cluster for RedisCluster {
    fn advertise(&self) -> &str {
        &self.advertise
    }

    fn owner<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            if self
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(stream)
            {
                return None;
            }
            if let Some((owner, at)) = self
                .owners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(stream)
            {
                let ttl = if owner.is_some() {
                    OWNER_TTL
                } else {
                    NO_OWNER_TTL
                };
                if at.elapsed() < ttl {
                    return owner.clone();
                }
            }
            let owner = match self
                .query::<Option<String>>(redis::cmd("GET").arg(owner_key(stream)))
                .await
            {
                Ok(o) => o.filter(|o| *o != self.advertise),
                Err(e) => {
                    tracing::debug!(%stream, "cluster: owner lookup failed: {e:#}");
                    None
                }
            };
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            if owners.len() > 10_000 {
                owners.clear();
            }
            owners.insert(stream.to_string(), (owner.clone(), Instant::now()));
            owner
        })
    }

    fn moving<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            // Called when nobody owns the stream: a last MSN stored within the last minute
            // means its node died while it was live.
            self.query::<bool>(redis::cmd("EXISTS").arg(msn_key(stream)))
                .await
                .unwrap_or(false)
        })
    }

    fn streams(&self) -> BoxFuture<'_, Vec<(String, String)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let page: anyhow::Result<(u64, Vec<String>)> = self
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg("llhls:owner:live/*")
                            .arg("COUNT")
                            .arg(1000),
                    )
                    .await;
                let Ok((next, keys)) = page else { break };
                if !keys.is_empty() {
                    let owners: Vec<Option<String>> = self
                        .query(redis::cmd("MGET").arg(&keys))
                        .await
                        .unwrap_or_default();
                    for (k, o) in keys.iter().zip(owners) {
                        if let (Some(name), Some(o)) = (k.strip_prefix("llhls:owner:live/"), o) {
                            out.push((name.to_string(), o));
                        }
                    }
                }
                cursor = next;
                if cursor == 0 || out.len() > 100_000 {
                    break;
                }
            }
            out.sort();
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_positions_parse() {
        let l = Last {
            msn: 17961400079,
            discontinuity_sequence: 3,
            min_segment_ms: 1000,
            avg_segment_ms: 1000,
            stored_ms: 1796140007900,
            bridge: None,
        };
        assert_eq!(parse_last(&l.to_string()), Some(l));
        // Positions written with the segment players saw (older versions wrote five numbers).
        let seen = Last {
            bridge: Some((17961400078, 1796140006900, 2)),
            ..l
        };
        assert_eq!(parse_last(&seen.to_string()), Some(seen));
        assert_eq!(
            seen.to_string(),
            "17961400079 3 1000 1000 1796140007900 17961400078 1796140006900 2"
        );
        // A seen segment above the last MSN is not a position this server writes.
        assert_eq!(parse_last("10 3 1000 1000 5 11 0 2"), None);
        assert_eq!(parse_last("10 3 1000 1000 5 9 0"), None);
        assert_eq!(parse_last("42 1 1000 1000"), None);
        assert_eq!(parse_last("x 3 1 1"), None);
        assert_eq!(parse_last(""), None);
    }

    #[test]
    fn a_takeover_goes_on_at_the_old_pace_and_never_reuses_an_msn() {
        let l = Last {
            msn: 1000,
            discontinuity_sequence: 3,
            min_segment_ms: 900,
            avg_segment_ms: 1000,
            stored_ms: 1_000_000,
            bridge: None,
        };
        // Taken over 6 s after the last store: six 1 s segments later, as the wall clock says
        // (not ahead of it, which left hls.js waiting).
        let c = continuation(&l, 1_006_000);
        assert_eq!(c.msn, 1006);
        assert_eq!(c.discontinuity_sequence, 4);
        // Taken over at once: still above what the old node may have opened after storing
        // (two seconds of 0.9 s segments: 3 more).
        assert_eq!(continuation(&l, 1_000_000).msn, 1004);
        // 0.2 s segments: ten more may have been opened.
        let short = Last {
            min_segment_ms: 200,
            avg_segment_ms: 200,
            ..l
        };
        assert_eq!(continuation(&short, 1_000_500).msn, 1011);
        assert_eq!(continuation(&short, 1_006_000).msn, 1030);
        // A clock that went backwards: the bound still holds.
        assert!(continuation(&l, 0).msn > 1003);
        assert_eq!(continuation(&l, 1_006_000).bridge, None);
    }

    #[test]
    fn a_continuation_re_lists_the_segment_players_saw_and_starts_one_discontinuity_above_it() {
        // Players last saw segment 999 (dated 999 000 ms, discontinuity sequence 2); the old
        // node may have opened 1000 (and segments after it, before it died).
        let l = Last {
            msn: 1000,
            discontinuity_sequence: 9,
            min_segment_ms: 900,
            avg_segment_ms: 1000,
            stored_ms: 1_000_000,
            bridge: Some((999, 999_000, 2)),
        };
        let c = continuation(&l, 1_006_000);
        // Enough MSNs for the 7 s since 999's date and 4 s for the publisher to come back, at
        // 0.9 of the mean segment each: 999 + ceil(11 / 0.9).
        assert_eq!(c.msn, 1012);
        let b = c.bridge.expect("a bridge");
        assert_eq!(
            (b.msn, b.program_date_time.0, b.discontinuity_sequence),
            (999, 999_000, 2)
        );
        // The bridge keeps 999's number (players saw 1000 and later under it too); the new run
        // starts one above.
        assert_eq!(c.discontinuity_sequence, 3);
    }

    #[test]
    fn segments_cut_short_by_a_stall_or_a_reconnect_do_not_set_the_pace() {
        use llhls_packager::playlist::SegmentEntry;
        let seg = |duration: f64, gap: bool, discontinuity: bool| SegmentEntry {
            msn: 0,
            duration,
            uri: String::new(),
            program_date_time: llhls_packager::WallClock(0),
            discontinuity,
            map_uri: String::new(),
            gap,
            parts: Vec::new(),
            parts_listed: false,
            bytes: 0,
            independent: true,
        };
        // 2 s segments; one cut at 0.1 s by a stall (GAP after it), one at 0.3 s by a
        // reconnect (a discontinuity after it).
        let window = [
            seg(2.0, false, false),
            seg(0.1, false, false),
            seg(2.0, true, false),
            seg(2.0, false, true),
            seg(0.3, false, false),
            seg(1.9, false, true),
            seg(2.0, false, false),
        ];
        assert_eq!(
            shortest_regular_segment_ms(&window.to_vec().into()),
            Some(1900)
        );
        // A short segment the stream went on from is a pace it keeps.
        let mut paced = window.to_vec();
        paced.push(seg(0.5, false, false));
        paced.push(seg(2.0, false, false));
        assert_eq!(shortest_regular_segment_ms(&paced.into()), Some(500));
        // Nothing regular: the shortest of all.
        assert_eq!(
            shortest_regular_segment_ms(
                &vec![seg(0.1, false, false), seg(2.0, true, false)].into()
            ),
            Some(100)
        );
        assert_eq!(shortest_regular_segment_ms(&Default::default()), None);
    }
}
