//! A real viewer for the fault and hostile-client tests, and what it measures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{try_http_get, Server};

pub fn rss_kib(s: &Server) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", s.child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The blocking reload hls.js makes after `playlist`: the next part of an open segment, or
/// part 0 of the next segment.
pub fn next_directive(playlist: &str) -> Option<(u64, u32)> {
    let mut last: Option<(u64, u32)> = None;
    let mut complete = false;
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let uri = rest.split("URI=\"").nth(1)?.split('"').next()?;
            let file = uri.rsplit('/').next()?.trim_end_matches(".m4s");
            let (m, p) = file.split_once('.')?;
            last = Some((m.parse().ok()?, p.parse().ok()?));
            complete = false;
        } else if line.starts_with("#EXTINF") {
            complete = true;
        }
    }
    let (m, p) = last?;
    Some(if complete { (m + 1, 0) } else { (m, p + 1) })
}

/// What the viewer saw in one phase.
#[derive(Default, Clone)]
pub struct PhaseLog {
    /// Blocking reloads answered with the part asked for.
    pub fresh: u64,
    pub errors: u64,
    pub lags_us: Vec<u64>,
    /// Time spent in the phase.
    pub secs: f64,
}

/// A real viewer on its own thread: blocking reloads of a media playlist, one new connection
/// each (as a player behind a CDN makes them), logged per phase.
pub struct Viewer {
    stop: Arc<AtomicBool>,
    /// 0: warming up, 1: baseline, 2: attack or fault.
    phase: Arc<AtomicU64>,
    phase_started: Instant,
    logs: Arc<Mutex<[PhaseLog; 3]>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Viewer {
    pub fn start(addr: SocketAddr, playlist: &str) -> Viewer {
        let playlist = playlist.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU64::new(0));
        let logs = Arc::new(Mutex::new(<[PhaseLog; 3]>::default()));
        let (st, ph, lg) = (stop.clone(), phase.clone(), logs.clone());
        let thread = thread::spawn(move || {
            let mut next: Option<(u64, u32)> = None;
            while !st.load(Ordering::Relaxed) {
                let path = match next {
                    Some((m, p)) => format!("{playlist}?_HLS_msn={m}&_HLS_part={p}"),
                    None => playlist.clone(),
                };
                let r = try_http_get(addr, &path, &[]);
                let received = now_us();
                let p = ph.load(Ordering::Relaxed) as usize;
                match r {
                    Ok(r) if r.status == 200 => {
                        let text = r.text();
                        if next.is_some() {
                            let published: Option<u64> =
                                r.header("llhls-published-us").and_then(|v| v.parse().ok());
                            let mut l = lg.lock().unwrap();
                            l[p].fresh += 1;
                            if let Some(t) = published {
                                l[p].lags_us.push(received.saturating_sub(t));
                            }
                        }
                        next = next_directive(&text);
                    }
                    _ => {
                        lg.lock().unwrap()[p].errors += 1;
                        next = None;
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
        Viewer {
            stop,
            phase,
            phase_started: Instant::now(),
            logs,
            thread: Some(thread),
        }
    }

    pub fn set_phase(&mut self, p: u64) {
        let old = self.phase.swap(p, Ordering::Relaxed) as usize;
        self.logs.lock().unwrap()[old].secs += self.phase_started.elapsed().as_secs_f64();
        self.phase_started = Instant::now();
    }

    pub fn finish(mut self) -> [PhaseLog; 3] {
        self.set_phase(0);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.logs.lock().unwrap().clone()
    }
}

pub fn p99_ms(v: &[u64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    v[((v.len() - 1) as f64 * 0.99).round() as usize] as f64 / 1000.0
}

impl PhaseLog {
    /// Several viewers' logs of the same phase as one: their parts and lags together, and
    /// their time summed, so that `rate` is the fresh parts a second of an average viewer.
    pub fn pooled<'a>(logs: impl IntoIterator<Item = &'a PhaseLog>) -> PhaseLog {
        let mut all = PhaseLog::default();
        for l in logs {
            all.fresh += l.fresh;
            all.errors += l.errors;
            all.lags_us.extend_from_slice(&l.lags_us);
            all.secs += l.secs;
        }
        all
    }

    /// Fresh parts a second.
    pub fn rate(&self) -> f64 {
        self.fresh as f64 / self.secs.max(0.001)
    }
}
