//! Playlists: the multivariant playlist, media playlists, and blocking reloads
//! (`_HLS_msn` / `_HLS_part` / `_HLS_skip`, LLHLS-RULES §2): a reload the published state
//! cannot answer yet waits on the stream's `watch` channel (`wait_for` checks the current value
//! first, so no wake-up is lost) for at most 3 target durations. A reload that waited, or one
//! for a part published less than a part ago, is answered with the state that first satisfied
//! it (`Published::as_first_answered`), not a later one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use llhls_packager::{classify, Decision, Directives, SkipMode};

use crate::error::Error;
use crate::headers::{playlist_reply, text_reply, Reply};
use crate::live::Published;
use crate::metrics::Class;
use crate::Origin;

/// `GET /live/STREAM/index.m3u8`; with `start`/`end`, a clip of the DVR window: every URI
/// carries the range (in UTC), so each rendition a player picks is the same clip.
pub(crate) fn multivariant(origin: &Origin, stream: &str, query: &str, gzip: bool) -> Reply {
    let class = Class::Multivariant;
    let p = match origin.published(stream) {
        Ok((_, p)) => p,
        Err(e) => return e.reply(class),
    };
    if !asks_clip(query) {
        return playlist_reply(class, &p, p.multivariant(), gzip, p.plain_cache.clone());
    }
    let clip = match window_clip(&p, query) {
        Ok(c) => c,
        Err(e) => return e.reply(class),
    };
    // A range the window has nothing of is refused here already, as the media playlists
    // would refuse it.
    let first = p.snapshot.renditions.first().map(|r| r.name.as_str());
    if let Some(Err(e)) = first.map(|r| clip_media(&p, r, &clip)) {
        return e.reply(class);
    }
    let text = String::from_utf8_lossy(&p.multivariant().plain);
    let body = crate::record::clip_multivariant(&text, &clip.query());
    text_reply(
        class,
        "application/vnd.apple.mpegurl",
        Bytes::from(body),
        "public, max-age=1",
    )
}

/// Does the query ask for a clip (`start` or `end`)?
fn asks_clip(query: &str) -> bool {
    query
        .split('&')
        .any(|p| matches!(p.split_once('=').map_or(p, |(k, _)| k), "start" | "end"))
}

/// The clip a live playlist request asks for: bounds in seconds count from the oldest segment
/// the window lists now. Delivery directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) do not
/// apply to a clip (it is not a live playlist): 400.
fn window_clip(p: &Published, query: &str) -> Result<crate::record::Clip, Error> {
    let directive = query.split('&').find_map(|pair| {
        let k = pair.split_once('=').map_or(pair, |(k, _)| k);
        // Unknown `_HLS_` names are ignored, as on any playlist request (rule 37).
        matches!(k, "_HLS_msn" | "_HLS_part" | "_HLS_skip").then_some(k)
    });
    if let Some(k) = directive {
        return Err(Error::BadQuery(format!(
            "{k} is a live playlist's delivery directive; a clip (start, end) is not a live playlist: ask for one or the other"
        )));
    }
    let base = p
        .snapshot
        .renditions
        .first()
        .and_then(|r| r.segments.first())
        .map_or(llhls_packager::WallClock(0), |s| s.program_date_time);
    match crate::record::parse_clip(query, base) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Error::BadQuery("no start or end".into())),
        Err(why) => Err(Error::BadQuery(
            why.replace("the recording's start", "the oldest segment of the window"),
        )),
    }
}

/// The rendition's full media playlist cut to `clip`, or why not.
fn clip_media(
    p: &Published,
    rendition: &str,
    clip: &crate::record::Clip,
) -> Result<(String, bool), Error> {
    let full = p
        .view(rendition, SkipMode::Full)
        .ok_or(Error::NoSuchRendition)?;
    let text = String::from_utf8_lossy(&full.plain);
    crate::record::clip_window(&text, clip, p.snapshot.ended).map_err(Error::BadQuery)
}

/// `GET /live/STREAM/RENDITION.m3u8?start=&end=`: the segments of the window overlapping the
/// range, `VOD` once a segment reaches its end (or the stream ended), else `EVENT`.
fn media_clip(origin: &Origin, stream: &str, rendition: &str, query: &str) -> Reply {
    let class = Class::Playlist;
    let result = origin.published(stream).and_then(|(_, p)| {
        let clip = window_clip(&p, query)?;
        clip_media(&p, rendition, &clip)
    });
    match result {
        // A finished clip does not change, but its oldest segments leave the window (and
        // are deleted) as the stream goes on: cached for a minute only.
        Ok((text, growing)) => text_reply(
            class,
            "application/vnd.apple.mpegurl",
            Bytes::from(text),
            if growing {
                "public, max-age=1"
            } else {
                "public, max-age=60"
            },
        ),
        Err(e) => {
            tracing::info!(stream, rendition, query, "clip refused: {e}");
            e.reply(class)
        }
    }
}

/// `GET /live/STREAM/RENDITION.m3u8[?_HLS_...]`: now, or when the stream satisfies the
/// directives (blocking reload), or 503 after 3 target durations.
pub(crate) async fn media(
    origin: &Origin,
    stream: &str,
    rendition: &str,
    query: &str,
    gzip: bool,
) -> Reply {
    if asks_clip(query) {
        return media_clip(origin, stream, rendition, query);
    }
    let directives = match Directives::parse(query) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(stream, rendition, query, "400: {e}");
            return Error::BadDirectives(e.to_string()).reply(Class::BlockingPlaylist);
        }
    };
    let class = if directives.is_blocking() {
        Class::BlockingPlaylist
    } else {
        Class::Playlist
    };
    let view = View {
        class,
        rendition,
        gzip,
    };
    reload(origin, stream, query, &directives, view)
        .await
        .unwrap_or_else(|e| e.reply(class))
}

/// What a playlist response shows: which rendition, for which metrics class, gzip'd or not.
#[derive(Clone, Copy)]
struct View<'a> {
    class: Class,
    rendition: &'a str,
    gzip: bool,
}

async fn reload(
    origin: &Origin,
    stream: &str,
    query: &str,
    directives: &Directives,
    view: View<'_>,
) -> Result<Reply, Error> {
    let rendition = view.rendition;
    let (s, p) = origin.published(stream)?;
    let r = p
        .snapshot
        .rendition(rendition)
        .ok_or(Error::NoSuchRendition)?;
    let td = u64::from(p.snapshot.timing.target_duration);
    let decision = classify(directives, &p.snapshot, r).map_err(|e| {
        tracing::info!(stream, rendition, query, "400: {e}");
        Error::BadDirectives(e.to_string())
    })?;
    let blocking_cache = p.blocking_cache.clone();
    let plain_cache = p.plain_cache.clone();
    match decision {
        Decision::Now(skip) => {
            let blocking_live = directives.is_blocking() && !p.snapshot.ended;
            // A blocking request for a part published less than a part ago (read late: the
            // server was busy, or the request came late) gets the state that part was
            // published in, as a request that waited for it does; one for an older part (a
            // player behind live) gets the latest.
            let p = match directives.msn {
                Some(msn) if blocking_live && r.part_target > 0.0 => {
                    let first = p.as_first_answered(rendition, msn, directives.part);
                    if first.at.elapsed().as_secs_f64() < r.part_target {
                        first
                    } else {
                        p
                    }
                }
                _ => p,
            };
            let cc = if blocking_live {
                blocking_cache
            } else {
                plain_cache
            };
            view_reply(view, &p, skip, cc)
        }
        Decision::Wait { msn, part, skip } => {
            let _guard = origin.hold(&s)?;
            let _player = PlayerGuard::new(&s.stats.held_playlists);
            let mut rx = s.published.clone();
            let mut shutdown = origin.shutdown.subscribe();
            let wait = rx.wait_for(|p| {
                p.as_ref().is_some_and(|p| {
                    p.snapshot.ended
                        || p.snapshot
                            .rendition(rendition)
                            .is_some_and(|r| r.satisfies(msn, part))
                })
            });
            let deadline = Duration::from_secs(3 * td);
            let released = tokio::select! {
                r = tokio::time::timeout(deadline, wait) => r.ok().and_then(|r| r.ok()).and_then(|p| p.clone()),
                _ = shutdown.wait_for(|s| *s) => {
                    // Shutting down: answered now (503, Retry-After) so the drain need not
                    // wait, without the timeout's log line (one per held request).
                    return Err(Error::HoldTimedOut);
                }
            };
            let Some(p) = released else {
                tracing::info!(
                    stream,
                    rendition,
                    msn,
                    ?part,
                    "503: not available within 3 target durations"
                );
                return Err(Error::HoldTimedOut);
            };
            // The state as it stood when the part was published (`as_first_answered`): a
            // task that ran late does not answer with a later one.
            let p = p.as_first_answered(rendition, msn, part);
            origin.metrics.wake(p.at.elapsed().as_secs_f64());
            let skip = if p.snapshot.ended {
                SkipMode::Full
            } else {
                skip
            };
            let cc = if p.snapshot.ended {
                plain_cache
            } else {
                blocking_cache
            };
            view_reply(view, &p, skip, cc)
        }
    }
}

/// The rendered `skip` view of the rendition in `p`, or 404.
fn view_reply(
    view: View<'_>,
    p: &Published,
    skip: SkipMode,
    cc: HeaderValue,
) -> Result<Reply, Error> {
    let v = p.view(view.rendition, skip).ok_or(Error::NoSuchRendition)?;
    Ok(playlist_reply(view.class, p, v, view.gzip, cc))
}

/// Counts a held blocking playlist request (about one per player and media playlist, see
/// `StreamStats::held_playlists`) for as long as it lives.
struct PlayerGuard<'a>(&'a AtomicUsize);

impl<'a> PlayerGuard<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        PlayerGuard(n)
    }
}

impl Drop for PlayerGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
