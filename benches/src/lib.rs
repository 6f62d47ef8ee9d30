//! Benchmarks and load generators for llhls. See `benches/README.md` for the suite, the
//! commands, and the results table.
//!
//! - `benches/packager.rs`: criterion micro-benches (packaging per frame, playlist render per
//!   view, directive parsing, box writing).
//! - `benches/origin.rs`: criterion: byte ranges of a growing segment served by the origin
//!   in-process (requests/s, bytes copied and allocated per request).
//! - `src/bin/fanout.rs`: holds N viewers issuing blocking playlist reloads as hls.js does.
//! - `src/bin/refserver.rs`: the reference: bare hyper + `tokio::sync::watch` long-poll, no
//!   LL-HLS work.
#![forbid(unsafe_code)]

/// The value after `--name` on the command line, if any (the bench tools' whole CLI).
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Reads (utime + stime) in seconds and VmRSS in KiB of a process from /proc.
pub fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((ticks as f64 / 100.0, rss))
}

/// The next blocking request hls.js makes after receiving `playlist` (its `playlistLoaded`
/// rule): after a part of an open parent, the next part; after a complete segment, part 0 of
/// the next MSN. `None` when the playlist has no parts.
pub fn next_directive(playlist: &str) -> Option<(u64, u32)> {
    let mut last: Option<(u64, u32)> = None;
    let mut last_is_complete = false;
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let uri = rest.split("URI=\"").nth(1)?.split('"').next()?;
            let file = uri.rsplit('/').next()?;
            let mut it = file.trim_end_matches(".m4s").split('.');
            let msn = it.next()?.parse().ok()?;
            let part = it.next()?.parse().ok()?;
            last = Some((msn, part));
            last_is_complete = false;
        } else if line.starts_with("#EXTINF") {
            last_is_complete = true;
        }
    }
    let (msn, part) = last?;
    Some(if last_is_complete {
        (msn + 1, 0)
    } else {
        (msn, part + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_like_hls_js() {
        let open = "#EXTINF:2.0,\na/1.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"a/2.0.m4s\"\n#EXT-X-PART:DURATION=0.2,URI=\"a/2.1.m4s\"\n";
        assert_eq!(next_directive(open), Some((2, 2)));
        let closed = "#EXT-X-PART:DURATION=0.2,URI=\"a/2.9.m4s\"\n#EXTINF:2.0,\na/2.m4s\n";
        assert_eq!(next_directive(closed), Some((3, 0)));
        assert_eq!(next_directive("#EXTINF:2.0,\na/1.m4s\n"), None);
    }
}
