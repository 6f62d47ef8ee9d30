//! `llhls`: a Low-Latency HLS packager and origin server.
//!
//! `llhls serve` wires RTMP ingest ([`rtmp`]), WHIP ingest ([`whip`]: WebRTC from OBS 30+,
//! browsers and GStreamer) and the demo source through the sans-IO packager into the HTTP
//! origin, which also routes `/whip/...` to the WHIP endpoint; `llhls package` packages a
//! media file to disk. Every ingest claims a stream name through [`llhls_ingest::streams`], which owns the
//! reconnect grace period. See the README for use.

mod activation;
mod cluster;
mod config;
mod demo;
mod package;
mod playback;
mod positions;

use llhls_ingest::{rtmp, source, srt, whip};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use llhls_origin::server::{self, ServerConfig};
use llhls_origin::{Origin, OriginConfig};
use llhls_packager::{Addressing, Layout, PackagerConfig};

use crate::config::{Config, ServeArgs};

/// mimalloc: the origin allocates small, short-lived buffers per request on every core; glibc
/// malloc showed up at about 10% of CPU under fan-out load (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use llhls_ingest::streams::Streams;

/// Low-Latency HLS packager and origin server.
#[derive(Debug, Parser)]
#[command(name = "llhls", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the origin: RTMP and WHIP publishers in, LL-HLS out over HTTP (and a demo stream).
    Serve(Box<ServeArgs>),
    /// Package a media file into the same CMAF LL-HLS layout on disk (ends with ENDLIST).
    Package {
        /// Input media file (any container FFmpeg can demux).
        input: PathBuf,
        /// Output directory (index.m3u8 and the media playlists go at its root).
        outdir: PathBuf,
        /// Fragment duration inside each segment file in milliseconds (a live stream's part
        /// target; the VOD playlists list whole segments, not parts).
        #[arg(long, default_value_t = 200)]
        part_target_ms: u64,
        /// Segment target in milliseconds; segments close on the first keyframe after 3/4 of it.
        #[arg(long, default_value_t = 2000)]
        segment_target_ms: u64,
        /// `muxed` (audio and video in one playlist) or `separate` (an audio rendition).
        #[arg(long, default_value = "muxed")]
        layout: String,
        /// Refused: part addressing (`serve --addressing`) means nothing here, since the VOD
        /// playlists list whole segment files, never parts.
        #[arg(long, hide = true)]
        addressing: Option<String>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
        /// ABR ladder, as `llhls serve --ladder` (e.g. `480p,360p`): transcoded rungs below
        /// the source on its grid, with the separate layout [default: none].
        #[arg(long, value_delimiter = ',')]
        ladder: Vec<llhls_ingest::ladder::RungSpec>,
    },
}

/// Runs the command; an error is printed as its chain of reasons, without a backtrace even
/// when RUST_BACKTRACE is set (a startup error is for the operator, not a bug report).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(serve(config, *args))
        }
        Command::Package {
            input,
            outdir,
            part_target_ms,
            segment_target_ms,
            layout,
            addressing,
            quiet,
            ladder,
        } => {
            if let Some(a) = addressing {
                anyhow::bail!(
                    "llhls package does not take --addressing ({a}): its VOD playlists list whole \
                     segment files, never parts, so there is no part addressing to choose. Part \
                     files or byte ranges are for live streams (llhls serve --addressing)"
                );
            }
            source::init()?;
            let config = PackagerConfig {
                part_target: std::time::Duration::from_millis(part_target_ms),
                segment_target: std::time::Duration::from_millis(segment_target_ms),
                layout: match layout.as_str() {
                    "separate" => Layout::Separate,
                    "muxed" => Layout::Muxed,
                    other => anyhow::bail!("--layout must be muxed or separate, not {other}"),
                },
                // Segments are written whole; parts only as their ranges, never as files.
                addressing: Addressing::ByteRange,
                delta_updates: false,
                ..PackagerConfig::default()
            };
            let started = std::time::Instant::now();
            let s = package::run(&input, &outdir, config, quiet, ladder)?;
            tracing::info!(
                frames = s.frames,
                segments = s.segments,
                bytes = s.bytes,
                secs = started.elapsed().as_secs_f64(),
                "packaged {} into {}",
                input.display(),
                outdir.display()
            );
            Ok(())
        }
    }
}

/// On SIGHUP, reads the configuration again and applies the publish keys: publishes are
/// checked against the new list, and the streams of publishers whose key was taken out are
/// stopped. Other settings need a restart (the log says so).
fn reload_keys_on_sighup(args: ServeArgs, streams: Arc<Streams>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let config = match Config::load(&args) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("SIGHUP: the configuration does not load ({e:#}); the publish keys stay as they were");
                    continue;
                }
            };
            let old = streams.keys();
            let new = config.publish_keys;
            let mut kicked = Vec::new();
            for gone in old.iter().filter(|k| !new.contains(k)) {
                for name in llhls_ingest::admission::streams_with_key(gone) {
                    if streams.kick(&name) {
                        kicked.push(name);
                    }
                }
            }
            tracing::info!(keys = new.len(), was = old.len(), kicked = %kicked.join(","), "SIGHUP: publish keys reloaded (other settings take a restart)");
            streams.set_keys(new);
        }
    });
    #[cfg(not(unix))]
    let _ = (args, streams);
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(dir) = &config.dvr_dir {
        llhls_origin::dvr::prepare(dir).map_err(anyhow::Error::msg)?;
        tracing::info!(
            window_secs = config.packager.dvr_window.as_secs(),
            dir = %dir.display(),
            "DVR: segments past the live window are kept on disk"
        );
    }
    let recordings = match &config.record {
        Some(rc) => {
            let r =
                llhls_origin::record::Recordings::open(rc.clone()).map_err(anyhow::Error::msg)?;
            tracing::info!(
                dir = %rc.root.display(),
                streams = %rc.patterns.join(","),
                recordings = r.list().len(),
                "recording streams"
            );
            r.spawn_retention();
            Some(r)
        }
        None => None,
    };
    let origin = Origin::new(OriginConfig {
        max_held_per_stream: config.max_held_per_stream,
        codecs_override: config
            .break_codecs
            .then(|| "avc1.ffffff,mp4a.40.99".to_string()),
        dvr_dir: config.dvr_dir.clone(),
        dvr_keep_ended: Some(config.dvr_keep_ended),
        recordings: recordings.clone(),
        max_held_per_ip: config.max_held_per_ip,
        playback_tokens: config
            .playback_secret
            .as_ref()
            .map(|s| Arc::new(llhls_origin::token::PlaybackTokens::new(s.as_bytes()))),
        ..OriginConfig::default()
    });
    let html = Bytes::from_static(include_bytes!("player/index.html"));
    origin.add_page("/", "text/html; charset=utf-8", html.clone());
    origin.add_page("/index.html", "text/html; charset=utf-8", html);
    origin.add_page(
        "/hls.min.js",
        "application/javascript",
        Bytes::from_static(include_bytes!("player/hls.min.js")),
    );
    let icon = Bytes::from_static(include_bytes!("player/favicon.svg"));
    // Browsers ask for /favicon.ico when a page names no icon (a playlist opened directly).
    origin.add_page("/favicon.svg", "image/svg+xml", icon.clone());
    origin.add_page("/favicon.ico", "image/svg+xml", icon);
    if config.whip_udp.is_some() {
        let publish = Bytes::from_static(include_bytes!("player/publish.html"));
        origin.add_page("/publish", "text/html; charset=utf-8", publish);
    }
    if let Some(ec) = &config.events_webhook {
        tracing::info!(webhook = %ec.url, queue = ec.queue, "lifecycle events go to the events webhook");
        let events = llhls_ingest::events::Events::install(ec.clone());
        origin.set_event_sink(llhls_ingest::events::Events::origin_sink());
        origin.add_metrics(Arc::new(move || events.render_metrics()));
    }
    if let Some(ac) = &config.auth_webhook {
        tracing::info!(webhook = %ac.url, timeout_ms = ac.timeout.as_millis() as u64, fail_open = ac.fail_open, cache_secs = ac.cache.as_secs(), "publishes are admitted by the auth webhook");
        let admission = llhls_ingest::admission::Admission::install(ac.clone(), origin.clone());
        origin.add_metrics(Arc::new(move || admission.render_metrics()));
    } else if config.publish_keys.is_empty() {
        let where_ = if config.whip_udp.is_some() {
            "the RTMP port or the WHIP endpoint"
        } else {
            "the RTMP port"
        };
        tracing::warn!("no publish keys configured: anyone who can reach {where_} can publish (set LLHLS_PUBLISH_KEYS or publish_keys)");
    }
    let demo_ladder = config.demo_ladder.as_ref().filter(|_| config.demo);
    let demo_has_rungs = demo_ladder.is_some_and(|l| !l.is_empty());
    if !config.ladder.is_empty() || demo_has_rungs {
        // Fails at startup, with the reason, when FFmpeg lacks libx264 or the H.264 decoder;
        // only the built-in demo ladder gives way (the server runs without it).
        let built = llhls_ingest::ladder::transcode::FfmpegLadder::new(config.ladder.clone())
            .and_then(|l| l.with_encoder(&config.ladder_encoder))
            .and_then(|l| match demo_ladder {
                Some(rungs) => l.with_stream(demo::STREAM, rungs.clone()),
                None => Ok(l),
            });
        match built {
            Ok(ladder) => {
                if !config.ladder.is_empty() {
                    let rungs: Vec<String> = config.ladder.iter().map(|r| r.to_string()).collect();
                    tracing::info!("ABR ladder: {} below each stream's source (rungs not below the source are skipped)", rungs.join(", "));
                }
                if let Some(rungs) = demo_ladder.filter(|_| demo_has_rungs) {
                    let rungs: Vec<String> = rungs.iter().map(|r| r.to_string()).collect();
                    tracing::info!("the demo stream has an ABR ladder: {} below its source (demo_ladder = \"off\" turns it off)", rungs.join(", "));
                }
                origin.set_ladder(Arc::new(ladder));
            }
            Err(e) if config.ladder.is_empty() && config.demo_ladder_is_default => {
                tracing::warn!("the demo stream plays without its ABR ladder: {e:#}");
            }
            Err(e) => return Err(e),
        }
    }
    let streams = Streams::new(
        origin.clone(),
        config.packager.clone(),
        config.publish_keys.clone(),
        config.reconnect_grace,
    );
    streams.set_max_streams(config.max_streams);
    streams.set_max_publish_kbps(config.max_publish_kbps);
    if config.playback_secret.is_some() {
        tracing::info!("streams are private: playlists and media need a playback token (/live/t/TOKEN/NAME/index.m3u8)");
    }
    if let Some((url, timeout)) = &config.playback_webhook {
        origin.set_playback_auth(
            Arc::new(playback::PlaybackWebhook::new(url.clone(), *timeout)),
            config.playback_token_secs,
        );
        tracing::info!("playback webhook on: viewers without a token are admitted by the platform and redirected to a token path");
    }
    // Sockets systemd holds across restarts (scripts/llhls.socket), else our own.
    let mut passed = activation::take();
    let http = match activation::pick(&mut passed, "http", config.http) {
        Some(l) => tokio::net::TcpListener::from_std(l)?,
        None => tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|e| bind_error(&Listener::HTTP, config.http, e.into()))?,
    };
    let rtmp_listener = match activation::pick(&mut passed, "rtmp", config.rtmp) {
        Some(l) => tokio::net::TcpListener::from_std(l)?,
        None => tokio::net::TcpListener::bind(config.rtmp)
            .await
            .map_err(|e| bind_error(&Listener::RTMP, config.rtmp, e.into()))?,
    };
    for p in &passed {
        tracing::warn!(name = %p.name, addr = %p.addr, "socket activation: a passed socket matches neither the HTTP nor the RTMP listener (name it http or rtmp with FileDescriptorName=, or listen on their ports); not used");
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // Log addresses a person can use: localhost and this host's address for a wildcard bind.
    let http_addr = http.local_addr()?;
    let rtmp_addr = rtmp_listener.local_addr()?;
    let http_host = whip::candidate_address(http_addr, None);
    streams.set_playback_base(format!("{scheme}://{http_host}"));
    let players: Vec<String> = reachable(http_addr, http_host)
        .into_iter()
        .map(|a| format!("{scheme}://{a}/"))
        .collect();
    // With an auth webhook the platform decides; publishers usually present a key it knows.
    let keys_required = !config.publish_keys.is_empty() || config.auth_webhook.is_some();
    let key = if !keys_required { "" } else { "?key=KEY" };
    // What the player page shows about publishing here (it knows the host it was loaded from).
    origin.add_page(
        "/server.json",
        "application/json",
        Bytes::from(format!(
            "{{\"version\":\"{}\",\"rtmp_port\":{},\"keys_required\":{},\"whip\":{}}}",
            env!("CARGO_PKG_VERSION"),
            rtmp_addr.port(),
            keys_required,
            config.whip_udp.is_some(),
        )),
    );
    if let Some(token) = &config.admin_token {
        let admin = llhls_ingest::admin::Admin::new(
            token.clone(),
            config.redacted_json(),
            origin.clone(),
            streams.clone(),
        );
        let admin = Arc::new(admin);
        origin.nest_fn("/api/v1", move |req| admin.clone().handle(req));
        tracing::info!("admin API on at /api/v1/ (bearer token: admin_token)");
    }
    reload_keys_on_sighup(args, streams.clone());
    if let Some(url) = &config.cluster_redis {
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{http_host}"));
        let c = cluster::RedisCluster::connect(url, advertise.clone(), origin.clone()).await?;
        streams.set_cluster(c.clone());
        origin.set_cluster(c.clone());
        c.spawn_renewal(streams.clone());
        tracing::info!(redis = %url, node = %advertise, "cluster: streams are shared through Redis; requests for another node's stream are proxied to it");
    } else {
        // A single server keeps its streams' positions for a restart (a cluster keeps them
        // in Redis).
        positions::Positions::start(
            &config.data_dir,
            origin.clone(),
            streams.clone(),
            config.reconnect_grace,
        );
    }
    // Turned true at SIGTERM / Ctrl-C: the RTMP listener then ends its publishers' connections
    // gently while the HTTP server drains.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rtmp_closed = tokio::spawn(rtmp::listen(rtmp_listener, streams.clone(), stop_rx));
    let mut srt_line = None;
    if let Some(addr) = config.srt {
        let listener = srt::Srt::bind(&srt::SrtConfig {
            addr,
            latency: config.srt_latency,
            passphrase: config.srt_passphrase.clone(),
        })
        .await
        .map_err(|e| bind_error(&Listener::SRT, addr, e))?;
        let bound = listener.local_addr();
        let stats = listener.stats.clone();
        origin.add_metrics(Arc::new(move || stats.render_metrics()));
        tokio::spawn(listener.run(streams.clone()));
        let latency_ms = config.srt_latency.as_millis() as u64;
        let host = whip::candidate_address(bound, None);
        srt_line = Some(
            move || tracing::info!(srt = %bound, latency_ms, "SRT: publish MPEG-TS to srt://{host}?streamid=publish:live/NAME{key}"),
        );
    }
    // Logged once every listener is bound, so that a port taken is the last thing said.
    let mut whip_line = None;
    if let Some(udp) = config.whip_udp {
        source::init()?;
        let candidate = whip::candidate_address(udp, config.whip_public_ip);
        let w = whip::Whip::start(
            whip::WhipConfig {
                udp,
                candidate,
                audio: if config.whip_opus_passthrough {
                    whip::session::AudioMode::Opus
                } else {
                    whip::session::AudioMode::Aac
                },
                aac_bitrate: 128_000,
                max_sessions: config.whip_max_sessions,
                max_sessions_per_ip: config.whip_max_sessions_per_ip,
                segment_target: config.packager.segment_target,
                break_av_sync_ms: if config.break_av_sync { 400 } else { 0 },
                transcode_video: config.whip_transcode_video,
            },
            streams.clone(),
        )
        .await
        .map_err(|e| bind_error(&Listener::WHIP_UDP, udp, e))?;
        let whip_urls: Vec<String> = reachable(http_addr, http_host)
            .into_iter()
            .map(|a| format!("{scheme}://{a}/whip/live/NAME"))
            .collect();
        let bearer = if config.publish_keys.is_empty() {
            ""
        } else {
            " with the header Authorization: Bearer KEY"
        };
        // Browsers give pages a camera only over HTTPS or on localhost.
        let publish_page = match (scheme, players.first()) {
            ("http", Some(local)) if local.contains("://localhost:") => {
                format!("{local}publish (cameras need HTTPS or localhost)")
            }
            _ => players
                .iter()
                .map(|p| format!("{p}publish"))
                .collect::<Vec<_>>()
                .join(" or "),
        };
        let udp = w.local_addr()?;
        whip_line = Some(
            move || tracing::info!(%udp, %candidate, "WHIP: POST offers to {}{bearer} (ICE candidate {candidate}); browser publishing at {publish_page}", whip_urls.join(" or ")),
        );
        let wm = w.clone();
        origin.add_metrics(Arc::new(move || wm.render_metrics()));
        origin.nest_fn("/whip", move |req| w.clone().handle(req));
    }
    tracing::info!(
        http = %http_addr,
        rtmp = %rtmp_addr,
        "llhls {} serving: player at {} ; publish to rtmp://{}/live/NAME{key}",
        env!("CARGO_PKG_VERSION"),
        players.join(" and "),
        whip::candidate_address(rtmp_addr, None),
    );
    if let Some(log) = srt_line {
        log();
    }
    if let Some(log) = whip_line {
        log();
    }
    if config.demo {
        source::init()?;
        tokio::spawn(demo::run(streams.clone(), config.demo_file.clone()));
    }
    let server_config = ServerConfig {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_conns_per_ip,
        header_read_timeout: config.header_timeout,
        send_timeout: config.send_timeout,
        send_unsent_bytes: config.send_unsent_bytes,
        trusted_proxies: config.trusted_proxies.clone(),
        max_header_bytes: config.max_header_bytes,
        lean_http1: config.lean_http1,
        tls: config.tls.clone(),
        ..ServerConfig::default()
    };
    server::serve(origin, http, server_config, async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await?;
    // The publishers' connections close within their 2 s (each reads what its encoder still
    // sends until the encoder closes), alongside the HTTP drain.
    if tokio::time::timeout(std::time::Duration::from_secs(3), rtmp_closed)
        .await
        .is_err()
    {
        tracing::warn!("RTMP connections still open 3 s after the signal: closing them");
    }
    if let Some(r) = recordings {
        // Every recording being written is closed as VOD with the segments it was handed,
        // so a stop (SIGTERM, Ctrl-C) leaves playable recordings without restart recovery.
        r.finish_all(std::time::Duration::from_secs(10)).await;
    }
    Ok(())
}

/// A socket the server listens on, and the setting that moves it (for startup errors).
struct Listener {
    /// What listens, as the error names it.
    what: &'static str,
    /// The setting: TOML key; the flag and the variable follow from it.
    key: &'static str,
    /// `ss` options that list who holds such a port.
    ss: &'static str,
}

impl Listener {
    const HTTP: Listener = Listener {
        what: "HTTP",
        key: "http",
        ss: "-ltnp",
    };
    const RTMP: Listener = Listener {
        what: "RTMP",
        key: "rtmp",
        ss: "-ltnp",
    };
    const SRT: Listener = Listener {
        what: "SRT",
        key: "srt",
        ss: "-lunp",
    };
    const WHIP_UDP: Listener = Listener {
        what: "WHIP UDP",
        key: "whip_udp",
        ss: "-lunp",
    };
}

/// A startup error for a listener that could not bind `addr`: when the address is taken (or a
/// low port is not allowed), says so, names the setting that moves it in its three forms, and
/// for the well-known ports which other server may hold it. Other errors pass unchanged.
fn bind_error(l: &Listener, addr: SocketAddr, e: anyhow::Error) -> anyhow::Error {
    let kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let setting = format!(
        "--{} / LLHLS_{} / `{}` in the config file",
        l.key.replace('_', "-"),
        l.key.to_uppercase(),
        l.key
    );
    let port = addr.port();
    match kind {
        Some(std::io::ErrorKind::AddrInUse) => {
            let holder = match (l.key, port) {
                ("http", 80 | 443) => {
                    "Another web server (nginx, Apache, Caddy; Debian's default nginx site \
                     listens on 80) or another llhls"
                }
                ("rtmp", 1935) => {
                    "Another RTMP server (nginx-rtmp, MediaMTX, SRS) or another llhls"
                }
                _ => "Another program (perhaps another llhls)",
            };
            anyhow::anyhow!(
                "cannot listen for {} on {addr}: the address is already in use. {holder} may hold \
                 it (`ss {} 'sport = :{port}'` shows which). Stop it, or choose another address \
                 with {setting}.",
                l.what,
                l.ss,
            )
        }
        Some(std::io::ErrorKind::PermissionDenied) if port < 1024 => anyhow::anyhow!(
            "cannot listen for {} on {addr}: ports below 1024 need root or \
             CAP_NET_BIND_SERVICE (the systemd unit in scripts/ grants it). Grant it, or choose \
             a port from 1024 up with {setting}.",
            l.what,
        ),
        _ => e.context(format!(
            "cannot listen for {} on {addr} ({setting})",
            l.what
        )),
    }
}

/// The addresses a listener bound to `bind` answers on, as a person would type them:
/// `localhost` and `host` (this host's outbound address, from `whip::candidate_address`) for a
/// wildcard bind, else the bound address.
fn reachable(bind: SocketAddr, host: SocketAddr) -> Vec<String> {
    if !bind.ip().is_unspecified() {
        return vec![bind.to_string()];
    }
    let mut out = vec![format!("localhost:{}", bind.port())];
    if !host.ip().is_loopback() {
        out.push(host.to_string());
    }
    out
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_use() -> anyhow::Error {
        std::io::Error::from(std::io::ErrorKind::AddrInUse).into()
    }

    #[test]
    fn a_busy_well_known_port_names_the_servers_that_may_hold_it() {
        let http = bind_error(&Listener::HTTP, "0.0.0.0:80".parse().unwrap(), in_use()).to_string();
        assert!(
            http.contains("0.0.0.0:80") && http.contains("already in use"),
            "{http}"
        );
        assert!(http.contains("--http / LLHLS_HTTP / `http`"), "{http}");
        assert!(
            http.contains("nginx") && http.contains("another llhls"),
            "{http}"
        );
        let rtmp =
            bind_error(&Listener::RTMP, "0.0.0.0:1935".parse().unwrap(), in_use()).to_string();
        assert!(rtmp.contains("--rtmp / LLHLS_RTMP / `rtmp`"), "{rtmp}");
        assert!(
            rtmp.contains("nginx-rtmp") && rtmp.contains("another llhls"),
            "{rtmp}"
        );
        let udp = bind_error(
            &Listener::WHIP_UDP,
            "0.0.0.0:8189".parse().unwrap(),
            in_use(),
        )
        .to_string();
        assert!(
            udp.contains("--whip-udp / LLHLS_WHIP_UDP / `whip_udp`"),
            "{udp}"
        );
        assert!(udp.contains("ss -lunp"), "{udp}");
        let denied: anyhow::Error =
            std::io::Error::from(std::io::ErrorKind::PermissionDenied).into();
        let low = bind_error(&Listener::HTTP, "0.0.0.0:80".parse().unwrap(), denied).to_string();
        assert!(low.contains("CAP_NET_BIND_SERVICE"), "{low}");
    }
}
