//! Configuration: a TOML file, overridden by environment variables, overridden by flags, and
//! validated once into [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use llhls_ingest::ladder::RungSpec;
use llhls_packager::{Addressing, Layout, PackagerConfig};
use serde::Deserialize;

/// `llhls serve` options, declared once: every flag also reads an `LLHLS_*` environment
/// variable, and the `--config` TOML file deserializes into this same struct (same names,
/// snake_case), so a setting cannot exist for one source and not the other.
#[derive(Debug, Args, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeArgs {
    /// TOML configuration file (see README "Configuration").
    #[arg(long, env = "LLHLS_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// HTTP listen address for players and CDN edges [default: 0.0.0.0:8080].
    #[arg(long, env = "LLHLS_HTTP")]
    pub http: Option<SocketAddr>,
    /// RTMP listen address for publishers [default: 0.0.0.0:1935].
    #[arg(long, env = "LLHLS_RTMP")]
    pub rtmp: Option<SocketAddr>,
    /// Serve a demo stream at live/demo; a publisher on live/demo takes it over, and the demo
    /// resumes once that publisher has left [default: true].
    #[arg(long, env = "LLHLS_DEMO")]
    pub demo: Option<bool>,
    /// Media file the demo stream loops [default: samples/media/demo.mp4].
    #[arg(long, env = "LLHLS_DEMO_FILE")]
    pub demo_file: Option<PathBuf>,
    /// Part target in milliseconds, rounded to whole frames [default: 200].
    #[arg(long, env = "LLHLS_PART_TARGET_MS")]
    pub part_target_ms: Option<u64>,
    /// Segment target in milliseconds; segments close on the first keyframe after 3/4 of it
    /// [default: 2000].
    #[arg(long, env = "LLHLS_SEGMENT_TARGET_MS")]
    pub segment_target_ms: Option<u64>,
    /// Complete segments kept in each playlist, at least 6 [default: 12].
    #[arg(long, env = "LLHLS_WINDOW_SEGMENTS")]
    pub window_segments: Option<usize>,
    /// DVR window in seconds: media playlists list this much of the stream, so players can
    /// seek back; segments older than the live window are kept on disk under `data_dir`.
    /// 0: no DVR, the playlist is the live window [default: 0].
    #[arg(long, env = "LLHLS_DVR_WINDOW_SECS")]
    pub dvr_window_secs: Option<u64>,
    /// With a DVR window: how long an ended stream stays as VOD of its window (its playlists
    /// with EXT-X-ENDLIST, its segments on disk), in seconds; a new publish of the same name
    /// replaces it at once. At least the usual 60 s [default: the DVR window length].
    #[arg(long, env = "LLHLS_DVR_KEEP_ENDED_SECS")]
    pub dvr_keep_ended_secs: Option<u64>,
    /// Directory for data kept on disk: DVR segments under `dvr/` (cleared at startup),
    /// recordings under `recordings/` (kept) [default: ./llhls-data].
    #[arg(long, env = "LLHLS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Record streams to `data_dir/recordings/`: `true` (every stream), `false`, or stream
    /// name patterns, comma-separated, where `*` matches any characters (`cam-*,show`). In
    /// TOML also `true`/`false` or a list of patterns [default: false].
    #[arg(long, env = "LLHLS_RECORD", value_parser = parse_record)]
    #[serde(deserialize_with = "record_setting")]
    pub record: Option<RecordPatterns>,
    /// Delete finished recordings this many seconds after their end [default: keep them].
    #[arg(long, env = "LLHLS_RECORD_MAX_AGE_SECS")]
    pub record_max_age_secs: Option<u64>,
    /// Delete the oldest finished recordings while all of them together take more than this
    /// many bytes [default: no limit].
    #[arg(long, env = "LLHLS_RECORD_MAX_BYTES")]
    pub record_max_bytes: Option<u64>,
    /// `muxed` (audio and video in one playlist) or `separate` (audio rendition) [default: muxed].
    #[arg(long, env = "LLHLS_LAYOUT")]
    pub layout: Option<String>,
    /// `files` (one URI per part) or `byterange` (parts as ranges of the segment) [default: files].
    #[arg(long, env = "LLHLS_ADDRESSING")]
    pub addressing: Option<String>,
    /// Offer delta playlist updates (_HLS_skip) [default: true].
    #[arg(long, env = "LLHLS_DELTA_UPDATES")]
    pub delta_updates: Option<bool>,
    /// When a publisher stalls, keep the stream going with its last keyframe's picture and
    /// silence, so players play on (frozen) at their latency, instead of holding the playlist
    /// and then publishing GAP parts [default: true]. H.264 with AAC-LC or Opus (mono or
    /// stereo) over RTMP or WHIP; other streams (SRT ones too) always hold.
    #[arg(long, env = "LLHLS_STALL_FILLER")]
    pub stall_filler: Option<bool>,
    /// Publish keys, comma-separated. Publishers append `?key=KEY` to the stream name. Empty:
    /// anyone can publish.
    /// In TOML either an array of strings or one comma-separated string.
    #[arg(
        long,
        env = "LLHLS_PUBLISH_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(deserialize_with = "comma_list")]
    pub publish_keys: Option<Vec<String>>,
    /// Seconds a stream whose publisher vanished (no unpublish) waits for a reconnect before it
    /// ends [default: 10]. A publisher that stops ends its stream at once.
    #[arg(long, env = "LLHLS_RECONNECT_GRACE_SECS")]
    pub reconnect_grace_secs: Option<u64>,
    /// Maximum open HTTP connections [default: 25000].
    #[arg(long, env = "LLHLS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Maximum held requests (blocking playlists, hinted parts) per stream [default: 50000].
    #[arg(long, env = "LLHLS_MAX_HELD_PER_STREAM")]
    pub max_held_per_stream: Option<usize>,
    /// Maximum open HTTP connections from one client IP; more are closed at once. 0: no
    /// limit. Leave it off behind a CDN, where one edge address carries many viewers
    /// [default: 0].
    #[arg(long, env = "LLHLS_MAX_CONNS_PER_IP")]
    pub max_conns_per_ip: Option<usize>,
    /// Maximum held requests (blocking playlists, hinted parts) from one client IP; more are
    /// answered 429 with Retry-After. 0: no limit. Leave it off behind a CDN [default: 0].
    #[arg(long, env = "LLHLS_MAX_HELD_PER_IP")]
    pub max_held_per_ip: Option<usize>,
    /// Maximum live streams (publishers and streams waiting for a reconnect); a publish
    /// beyond it is refused. 0: no limit [default: 0].
    #[arg(long, env = "LLHLS_MAX_STREAMS")]
    pub max_streams: Option<usize>,
    /// Maximum bitrate of one publisher in kbit/s, averaged over 5 seconds; a publisher above
    /// it is disconnected. 0: no limit [default: 0].
    #[arg(long, env = "LLHLS_MAX_PUBLISH_KBPS")]
    pub max_publish_kbps: Option<u64>,
    /// Playback secret (at least 16 characters): streams become private, and every live
    /// playlist and media URL needs a signed, expiring token (README "Playback tokens")
    /// [default: none, streams are public].
    #[arg(long, env = "LLHLS_PLAYBACK_SECRET")]
    pub playback_secret: Option<String>,
    /// Playback authorization by HTTP callback (needs playback_secret): a viewer asking for a
    /// stream's multivariant playlist without a token is POSTed here as JSON, once, and on a
    /// 2xx redirected to the stream's token path (README "Private streams"); `http://` only
    /// [default: none, tokens come from the site only].
    #[arg(long, env = "LLHLS_PLAYBACK_WEBHOOK", hide_env_values = true)]
    pub playback_webhook: Option<String>,
    /// Milliseconds the playback webhook may take; no answer in time refuses the viewer
    /// [default: 2000].
    #[arg(long, env = "LLHLS_PLAYBACK_WEBHOOK_TIMEOUT_MS")]
    pub playback_webhook_timeout_ms: Option<u64>,
    /// Period of the tokens minted for viewers the playback webhook admits: each lives one to
    /// two periods and is shared by every viewer admitted in the same period [default: 3600].
    #[arg(long, env = "LLHLS_PLAYBACK_TOKEN_SECS")]
    pub playback_token_secs: Option<u64>,
    /// Seconds a client may take to send request headers / stay idle [default: 30].
    #[arg(long, env = "LLHLS_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a response may make no write progress (a client that stopped reading) before
    /// its connection is reset. 0: never [default: 30].
    #[arg(long, env = "LLHLS_SEND_TIMEOUT_SECS")]
    pub send_timeout_secs: Option<u64>,
    /// Bytes each HTTP connection's socket may queue that the kernel has not sent yet (Linux
    /// TCP_NOTSENT_LOWAT); the rest of a response waits in the server, shared with other
    /// viewers. 0: the kernel's default (up to the whole send buffer, 4 MiB) [default: 131072].
    #[arg(long, env = "LLHLS_SEND_UNSENT_BYTES")]
    pub send_unsent_bytes: Option<u32>,
    /// Proxies (CDN edges, load balancers) trusted to name the client in X-Forwarded-For or
    /// Forwarded, as addresses or CIDR ranges: "10.0.0.0/8,127.0.0.1". The per-IP limits and
    /// the logs then use the forwarded client; a trusted proxy's own connections are not
    /// counted per IP. In TOML either an array or one comma-separated string [default: none].
    #[arg(long, env = "LLHLS_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Option<Vec<String>>,
    /// Largest request header block in bytes (larger: 431); above 8192 every HTTP/1.1
    /// connection hyper serves reads into a 16 KB buffer instead of 8 KB [default: 8192].
    #[arg(long, env = "LLHLS_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Answer HTTP/1.1 requests without a body (all that players and CDN edges send) on the
    /// lean path: about 3 KB per held viewer instead of hyper's ~24 KB. `false` hands every
    /// HTTP/1.1 connection to hyper, as before [default: true].
    #[arg(long, env = "LLHLS_LEAN_HTTP1")]
    pub lean_http1: Option<bool>,
    /// PEM certificate chain: serve HTTPS with HTTP/2 (ALPN) instead of plain HTTP.
    #[arg(long, env = "LLHLS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "LLHLS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// SRT listen address (UDP) for publishers sending MPEG-TS (stream id
    /// `publish:live/NAME`); `off` disables SRT [default: off].
    #[arg(long, env = "LLHLS_SRT")]
    pub srt: Option<String>,
    /// SRT receive latency in milliseconds offered to publishers; the larger of this and the
    /// publisher's own is used [default: 120].
    #[arg(long, env = "LLHLS_SRT_LATENCY_MS")]
    pub srt_latency_ms: Option<u64>,
    /// SRT passphrase (10-79 characters): publishers must encrypt with it (AES, any key
    /// length); unset: publishers must not encrypt [default: none].
    #[arg(long, env = "LLHLS_SRT_PASSPHRASE", hide_env_values = true)]
    pub srt_passphrase: Option<String>,
    /// WHIP (WebRTC) UDP address every session shares; `off` disables WHIP
    /// [default: 0.0.0.0:8189].
    #[arg(long, env = "LLHLS_WHIP_UDP")]
    pub whip_udp: Option<String>,
    /// The IP publishers reach the WHIP UDP port at, when it is not this host's own address
    /// (behind 1:1 NAT, in a container) [default: the bound IP, else the host's outbound IP].
    #[arg(long, env = "LLHLS_WHIP_PUBLIC_IP")]
    pub whip_public_ip: Option<std::net::IpAddr>,
    /// WHIP audio: `aac` (Opus transcoded to AAC-LC; plays everywhere) or `opus` (passed
    /// through) [default: aac].
    #[arg(long, env = "LLHLS_WHIP_AUDIO")]
    pub whip_audio: Option<String>,
    /// Transcode VP8/VP9 WHIP video to H.264 (libx264; costs CPU) instead of refusing it
    /// [default: false].
    #[arg(long, env = "LLHLS_WHIP_TRANSCODE_VIDEO")]
    pub whip_transcode_video: Option<bool>,
    /// Most simultaneous WHIP sessions [default: 100].
    #[arg(long, env = "LLHLS_WHIP_MAX_SESSIONS")]
    pub whip_max_sessions: Option<usize>,
    /// Most simultaneous WHIP sessions from one client IP; more offers are answered 429.
    /// 0: no limit [default: 0].
    #[arg(long, env = "LLHLS_WHIP_MAX_SESSIONS_PER_IP")]
    pub whip_max_sessions_per_ip: Option<usize>,
    /// Redis URL (`redis://10.0.0.2:6379`): run as one node of several sharing streams
    /// through Redis (publishes claim their stream there; viewer requests for a stream another
    /// node has are proxied to it) [default: off, a single node].
    #[arg(long, env = "LLHLS_CLUSTER_REDIS")]
    pub cluster_redis: Option<String>,
    /// This node's HTTP address as the other nodes reach it, with --cluster-redis
    /// (`http://10.0.0.5:8080`) [default: http:// and the HTTP listener's address].
    #[arg(long, env = "LLHLS_ADVERTISE")]
    pub advertise: Option<String>,
    /// ABR ladder: transcoded H.264 renditions below the source, e.g. `720p,480p,360p`
    /// (presets 1080p, 720p, 540p, 480p, 360p, 240p), or `off`. Rungs at or above the source's
    /// height are skipped. In TOML also a list of tables `{ name, height, video_kbps, profile }`.
    /// Needs the `separate` layout, which it selects [default: off].
    #[arg(long, env = "LLHLS_LADDER", value_delimiter = ',', value_parser = parse_rung)]
    #[serde(deserialize_with = "ladder_list")]
    pub ladder: Option<Vec<LadderEntry>>,
    /// The demo stream's own ABR ladder (same forms as `ladder`, `off` for none; the demo uses
    /// the separate layout when it has one) [default: `360p,240p`, or `ladder` when that is
    /// set].
    #[arg(long, env = "LLHLS_DEMO_LADDER", value_delimiter = ',', value_parser = parse_rung)]
    #[serde(deserialize_with = "ladder_list")]
    pub demo_ladder: Option<Vec<LadderEntry>>,
    /// H.264 encoder of the ladder's rungs: `libx264`, or a hardware encoder by name
    /// (`h264_nvenc`, `h264_qsv`, `h264_vaapi`; startup fails, saying why, when this FFmpeg
    /// lacks it or cannot open it) [default: libx264].
    #[arg(long, env = "LLHLS_LADDER_ENCODER")]
    pub ladder_encoder: Option<String>,
    /// Publish authorization by HTTP callback: every RTMP, WHIP and SRT publish is POSTed
    /// here as JSON and admitted only on a 2xx answer, which may rename the stream and set
    /// its options (README, "Platform integration"); `http://` only [default: none].
    #[arg(long, env = "LLHLS_AUTH_WEBHOOK", hide_env_values = true)]
    pub auth_webhook: Option<String>,
    /// Milliseconds the auth webhook may take to answer [default: 3000].
    #[arg(long, env = "LLHLS_AUTH_WEBHOOK_TIMEOUT_MS")]
    pub auth_webhook_timeout_ms: Option<u64>,
    /// When the auth webhook fails (no answer in time, 5xx, a garbled answer): `closed`
    /// refuses the publish, `open` admits it under the name asked for [default: closed].
    #[arg(long, env = "LLHLS_AUTH_WEBHOOK_FAIL")]
    pub auth_webhook_fail: Option<String>,
    /// Seconds an auth webhook answer is reused for the same stream name and key; 0: ask
    /// every time [default: 0].
    #[arg(long, env = "LLHLS_AUTH_WEBHOOK_CACHE_SECS")]
    pub auth_webhook_cache_secs: Option<u64>,
    /// Lifecycle webhook: stream started and ended, publisher disconnected and reconnected,
    /// publish refused, each POSTed as JSON, at least once and in order (README, "Platform
    /// integration"); `http://` only [default: none].
    #[arg(long, env = "LLHLS_EVENTS_WEBHOOK", hide_env_values = true)]
    pub events_webhook: Option<String>,
    /// Milliseconds one delivery to the events webhook may take [default: 5000].
    #[arg(long, env = "LLHLS_EVENTS_WEBHOOK_TIMEOUT_MS")]
    pub events_webhook_timeout_ms: Option<u64>,
    /// Lifecycle events held while the events webhook is down; later ones are dropped and
    /// counted [default: 10000].
    #[arg(long, env = "LLHLS_EVENTS_QUEUE")]
    pub events_queue: Option<usize>,
    /// Admin API bearer token (at least 16 characters): turns on `/api/v1/` (stream list,
    /// kick, key revocation, info); unset: the API answers 404 [default: none].
    #[arg(long, env = "LLHLS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Test only: advertise a wrong CODECS string, so player tests can prove they catch a
    /// broken stream.
    #[arg(long, hide = true, env = "LLHLS_BREAK_CODECS")]
    #[serde(skip)]
    pub break_codecs: bool,
    /// Test only: publish WHIP audio 400 ms late, so player tests can prove that their
    /// lip-sync check catches it.
    #[arg(long, hide = true, env = "LLHLS_BREAK_AV_SYNC")]
    #[serde(skip)]
    pub break_av_sync: bool,
}

/// `publish_keys` in TOML: `["a", "b"]` or `"a,b"` (the form the flag and the environment
/// variable take).
fn comma_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match List::deserialize(d)? {
        List::One(s) => s.split(',').map(str::to_string).collect(),
        List::Many(v) => v,
    }))
}

/// The `record` setting: which stream names are recorded (empty: none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordPatterns(pub Vec<String>);

impl RecordPatterns {
    fn from_list(items: Vec<String>) -> Result<RecordPatterns, String> {
        let mut v = Vec::new();
        for p in items.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            if !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
            {
                return Err(format!(
                    "record: {p:?} is not a stream name pattern (letters, digits, `-`, `_`, `*`)"
                ));
            }
            v.push(p.to_string());
        }
        Ok(RecordPatterns(v))
    }
}

fn parse_record(s: &str) -> Result<RecordPatterns, String> {
    match s.trim() {
        "true" => Ok(RecordPatterns(vec!["*".into()])),
        "false" | "" => Ok(RecordPatterns(Vec::new())),
        list => RecordPatterns::from_list(list.split(',').map(str::to_string).collect()),
    }
}

fn record_setting<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RecordPatterns>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Setting {
        Flag(bool),
        One(String),
        Many(Vec<String>),
    }
    let r = match Setting::deserialize(d)? {
        Setting::Flag(true) => Ok(RecordPatterns(vec!["*".into()])),
        Setting::Flag(false) => Ok(RecordPatterns(Vec::new())),
        Setting::One(s) => parse_record(&s),
        Setting::Many(v) => RecordPatterns::from_list(v),
    };
    r.map(Some).map_err(serde::de::Error::custom)
}

/// One `ladder` entry: a preset name, `off`, or (TOML only) a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LadderEntry {
    /// `off`: no ladder.
    Off,
    /// A rung.
    Rung(RungSpec),
}

fn parse_rung(s: &str) -> Result<LadderEntry, String> {
    match s.trim() {
        "off" | "" => Ok(LadderEntry::Off),
        name => name.parse().map(LadderEntry::Rung),
    }
}

/// `ladder` in TOML: `"off"`, `"720p,360p"`, or a list of preset names and tables.
fn ladder_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<LadderEntry>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Name(String),
        Table(RungSpec),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<Item>),
    }
    let entries: Result<Vec<LadderEntry>, String> = match List::deserialize(d)? {
        List::One(s) => s.split(',').map(parse_rung).collect(),
        List::Many(v) => v
            .into_iter()
            .map(|i| match i {
                Item::Name(n) => parse_rung(&n),
                Item::Table(t) => Ok(LadderEntry::Rung(t)),
            })
            .collect(),
    };
    entries.map(Some).map_err(serde::de::Error::custom)
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub demo: bool,
    pub demo_file: PathBuf,
    pub packager: PackagerConfig,
    pub publish_keys: Vec<String>,
    pub reconnect_grace: Duration,
    pub max_connections: usize,
    pub max_held_per_stream: usize,
    /// Per-client-IP limits (0: none).
    pub max_conns_per_ip: usize,
    pub max_held_per_ip: usize,
    /// Live streams at once (0: no limit).
    pub max_streams: usize,
    /// A publisher's bitrate limit in kbit/s (0: none).
    pub max_publish_kbps: u64,
    /// Playback token secret (None: public streams).
    pub playback_secret: Option<String>,
    /// The playback webhook and its timeout (None: no callback).
    pub playback_webhook: Option<(llhls_ingest::webhook::WebhookUrl, Duration)>,
    /// Period of the tokens minted for admitted viewers (seconds).
    pub playback_token_secs: u64,
    pub header_timeout: Duration,
    /// No write progress for this long resets a connection (zero: never).
    pub send_timeout: Duration,
    /// TCP_NOTSENT_LOWAT of HTTP sockets (0: the kernel's default).
    pub send_unsent_bytes: u32,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: llhls_origin::limits::TrustedProxies,
    pub max_header_bytes: usize,
    pub lean_http1: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub break_codecs: bool,
    pub break_av_sync: bool,
    /// SRT UDP socket (None: SRT off).
    pub srt: Option<SocketAddr>,
    /// SRT receive latency.
    pub srt_latency: Duration,
    /// SRT encryption passphrase (None: no encryption).
    pub srt_passphrase: Option<String>,
    /// WHIP UDP socket (None: WHIP off).
    pub whip_udp: Option<SocketAddr>,
    pub whip_public_ip: Option<std::net::IpAddr>,
    pub whip_opus_passthrough: bool,
    pub whip_max_sessions: usize,
    pub whip_max_sessions_per_ip: usize,
    /// Redis URL of the cluster (None: a single node).
    pub cluster_redis: Option<String>,
    /// This node's address for the other nodes (None: from the HTTP listener).
    pub advertise: Option<String>,
    pub whip_transcode_video: bool,
    /// ABR ladder rungs (empty: off).
    pub ladder: Vec<RungSpec>,
    /// The demo stream's own ladder (None: the same as every stream's; empty: none).
    pub demo_ladder: Option<Vec<RungSpec>>,
    /// Whether `demo_ladder` is the built-in default rather than configured: a default that
    /// FFmpeg cannot run is dropped with a warning instead of failing startup.
    pub demo_ladder_is_default: bool,
    /// The rungs' H.264 encoder.
    pub ladder_encoder: String,
    /// Where DVR segments go (`None`: no DVR window).
    pub dvr_dir: Option<PathBuf>,
    /// `data_dir`: also where the live streams' positions are kept for a restart.
    pub data_dir: PathBuf,
    /// How long an ended stream with a DVR window is kept as VOD.
    pub dvr_keep_ended: Duration,
    /// Recording (`None`: no stream is recorded).
    pub record: Option<llhls_origin::record::RecordConfig>,
    /// The publish webhook (`None`: static keys only).
    pub auth_webhook: Option<llhls_ingest::admission::AdmissionConfig>,
    /// The lifecycle webhook (`None`: no events sent).
    pub events_webhook: Option<llhls_ingest::events::EventsConfig>,
    /// The admin API's bearer token (`None`: no admin API).
    pub admin_token: Option<String>,
}

impl Config {
    /// Merges flags/env over the file over defaults, then validates.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let file: ServeArgs = match &args.config {
            Some(p) => read_file(p)?,
            None => ServeArgs::default(),
        };
        macro_rules! pick {
            ($f:ident, $d:expr) => {
                args.$f.clone().or(file.$f.clone()).unwrap_or($d)
            };
        }
        let ladder = rungs("ladder", pick!(ladder, Vec::new()))?;
        let configured_demo_ladder = args.demo_ladder.clone().or(file.demo_ladder.clone());
        let demo_ladder_is_default = configured_demo_ladder.is_none() && ladder.is_empty();
        let demo_ladder = match configured_demo_ladder {
            Some(entries) => Some(rungs("demo_ladder", entries)?),
            // A newcomer's first stream shows ABR working: two rungs below the demo's 720p.
            None if ladder.is_empty() => Some(
                DEFAULT_DEMO_LADDER
                    .iter()
                    .map(|n| n.parse().expect("a preset"))
                    .collect(),
            ),
            None => None,
        };
        let default_layout = if ladder.is_empty() {
            "muxed"
        } else {
            // The rungs share one audio rendition.
            "separate"
        };
        let layout = match pick!(layout, default_layout.into()).as_str() {
            "muxed" if !ladder.is_empty() => {
                bail!("layout `muxed` cannot carry an ABR ladder (the rungs share one audio rendition): use `separate` or leave layout unset")
            }
            "muxed" => Layout::Muxed,
            "separate" => Layout::Separate,
            other => bail!("layout must be `muxed` or `separate`, not `{other}`"),
        };
        let addressing = match pick!(addressing, "files".into()).as_str() {
            "files" => Addressing::Files,
            "byterange" => Addressing::ByteRange,
            other => bail!("addressing must be `files` or `byterange`, not `{other}`"),
        };
        let part_ms = pick!(part_target_ms, 200);
        let seg_ms = pick!(segment_target_ms, 2000);
        if !(50..=2000).contains(&part_ms) {
            bail!("part_target_ms must be between 50 and 2000, not {part_ms}");
        }
        if seg_ms < 2 * part_ms || seg_ms > 10_000 {
            bail!("segment_target_ms must be at least two parts and at most 10000, not {seg_ms}");
        }
        let window = pick!(window_segments, 12);
        if window < 6 {
            bail!("window_segments must be at least 6 (Apple requires six segments in a live playlist), not {window}");
        }
        let dvr_secs = pick!(dvr_window_secs, 0);
        if dvr_secs > llhls_packager::MAX_DVR_WINDOW_SECS {
            bail!(
                "dvr_window_secs must be at most {} (30 days), not {dvr_secs}",
                llhls_packager::MAX_DVR_WINDOW_SECS
            );
        }
        let dvr_keep_ended = pick!(dvr_keep_ended_secs, dvr_secs);
        if dvr_keep_ended > llhls_packager::MAX_DVR_WINDOW_SECS {
            bail!(
                "dvr_keep_ended_secs must be at most {} (30 days), not {dvr_keep_ended}",
                llhls_packager::MAX_DVR_WINDOW_SECS
            );
        }
        let data_dir = pick!(data_dir, PathBuf::from("./llhls-data"));
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("tls_cert and tls_key must be given together"),
        };
        let keys: Vec<String> = pick!(publish_keys, Vec::new())
            .into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        let whip_udp = match pick!(whip_udp, "0.0.0.0:8189".into()).as_str() {
            "off" | "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .with_context(|| format!("whip_udp must be IP:PORT or `off`, not `{a}`"))?,
            ),
        };
        let srt = match pick!(srt, "off".into()).as_str() {
            "off" | "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .with_context(|| format!("srt must be IP:PORT or `off`, not `{a}`"))?,
            ),
        };
        let srt_latency = Duration::from_millis(pick!(srt_latency_ms, 120).clamp(20, 10_000));
        let srt_passphrase = args
            .srt_passphrase
            .clone()
            .or(file.srt_passphrase.clone())
            .filter(|p| !p.is_empty());
        if let Some(p) = &srt_passphrase {
            if !(10..=79).contains(&p.chars().count()) {
                bail!(
                    "srt_passphrase must be 10 to 79 characters (SRT's rule), not {}",
                    p.chars().count()
                );
            }
        }
        let playback_secret = args
            .playback_secret
            .clone()
            .or(file.playback_secret.clone())
            .filter(|p| !p.is_empty());
        if let Some(p) = &playback_secret {
            if p.len() < 16 {
                bail!(
                    "playback_secret must be at least 16 characters (e.g. `openssl rand -hex 32`), not {}",
                    p.len()
                );
            }
        }
        let playback_webhook = match args
            .playback_webhook
            .clone()
            .or(file.playback_webhook.clone())
        {
            Some(url) if !url.is_empty() => {
                if playback_secret.is_none() {
                    bail!("playback_webhook needs playback_secret: the webhook admits viewers to private streams");
                }
                Some((
                    llhls_ingest::webhook::WebhookUrl::parse(&url)
                        .map_err(|e| anyhow::anyhow!("playback_webhook: {e}"))?,
                    Duration::from_millis(
                        pick!(playback_webhook_timeout_ms, 2000).clamp(10, 60_000),
                    ),
                ))
            }
            _ => None,
        };
        let playback_token_secs = pick!(playback_token_secs, 3600).clamp(10, 7 * 24 * 3600);
        let whip_opus_passthrough = match pick!(whip_audio, "aac".into()).as_str() {
            "aac" => false,
            "opus" => true,
            other => bail!("whip_audio must be `aac` or `opus`, not `{other}`"),
        };
        let auth_webhook = match args.auth_webhook.clone().or(file.auth_webhook.clone()) {
            Some(url) if !url.is_empty() => Some(llhls_ingest::admission::AdmissionConfig {
                url: llhls_ingest::webhook::WebhookUrl::parse(&url)
                    .map_err(|e| anyhow::anyhow!("auth_webhook: {e}"))?,
                timeout: Duration::from_millis(
                    pick!(auth_webhook_timeout_ms, 3000).clamp(10, 60_000),
                ),
                fail_open: match pick!(auth_webhook_fail, "closed".into()).as_str() {
                    "closed" => false,
                    "open" => true,
                    other => bail!("auth_webhook_fail must be `open` or `closed`, not `{other}`"),
                },
                cache: Duration::from_secs(pick!(auth_webhook_cache_secs, 0)),
            }),
            _ => None,
        };
        let events_webhook = match args.events_webhook.clone().or(file.events_webhook.clone()) {
            Some(url) if !url.is_empty() => Some(llhls_ingest::events::EventsConfig {
                url: llhls_ingest::webhook::WebhookUrl::parse(&url)
                    .map_err(|e| anyhow::anyhow!("events_webhook: {e}"))?,
                timeout: Duration::from_millis(
                    pick!(events_webhook_timeout_ms, 5000).clamp(10, 60_000),
                ),
                queue: pick!(events_queue, 10_000).max(1),
            }),
            _ => None,
        };
        let admin_token = args
            .admin_token
            .clone()
            .or(file.admin_token.clone())
            .filter(|t| !t.is_empty());
        if let Some(t) = &admin_token {
            if t.chars().count() < 16 || t.chars().any(char::is_whitespace) {
                bail!("admin_token must be at least 16 characters, without spaces (a random one: `openssl rand -hex 24`)");
            }
        }
        Ok(Config {
            admin_token,
            auth_webhook,
            events_webhook,
            http: pick!(http, "0.0.0.0:8080".parse().expect("valid literal")),
            rtmp: pick!(rtmp, "0.0.0.0:1935".parse().expect("valid literal")),
            demo: pick!(demo, true),
            demo_file: pick!(demo_file, PathBuf::from("samples/media/demo.mp4")),
            packager: PackagerConfig {
                part_target: Duration::from_millis(part_ms),
                segment_target: Duration::from_millis(seg_ms),
                max_target_duration: 10,
                window_segments: window,
                dvr_window: Duration::from_secs(dvr_secs),
                layout,
                addressing,
                first_msn: 1,
                delta_updates: pick!(delta_updates, true),
                first_discontinuity_sequence: 0,
                stall_filler: pick!(stall_filler, true),
                bridge: None,
            },
            publish_keys: keys,
            reconnect_grace: Duration::from_secs(pick!(reconnect_grace_secs, 10)),
            max_connections: pick!(max_connections, 25_000),
            max_held_per_stream: pick!(max_held_per_stream, 50_000),
            max_conns_per_ip: pick!(max_conns_per_ip, 0),
            max_held_per_ip: pick!(max_held_per_ip, 0),
            max_streams: pick!(max_streams, 0),
            max_publish_kbps: pick!(max_publish_kbps, 0),
            playback_secret,
            playback_webhook,
            playback_token_secs,
            header_timeout: Duration::from_secs(pick!(header_timeout_secs, 30).max(1)),
            send_timeout: Duration::from_secs(pick!(send_timeout_secs, 30)),
            send_unsent_bytes: pick!(send_unsent_bytes, 128 * 1024),
            trusted_proxies: llhls_origin::limits::TrustedProxies::new(
                pick!(trusted_proxies, Vec::new())
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse()
                            .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
            max_header_bytes: pick!(max_header_bytes, 8 * 1024).max(1024),
            lean_http1: pick!(lean_http1, true),
            tls,
            break_codecs: args.break_codecs,
            break_av_sync: args.break_av_sync,
            srt,
            srt_latency,
            srt_passphrase,
            whip_udp,
            whip_public_ip: args.whip_public_ip.or(file.whip_public_ip),
            whip_opus_passthrough,
            whip_max_sessions: pick!(whip_max_sessions, 100).max(1),
            whip_max_sessions_per_ip: pick!(whip_max_sessions_per_ip, 0),
            cluster_redis: args
                .cluster_redis
                .clone()
                .or(file.cluster_redis.clone())
                .filter(|u| !u.is_empty() && u != "off"),
            advertise: args
                .advertise
                .clone()
                .or(file.advertise.clone())
                .map(|a| a.trim_end_matches('/').to_string())
                .filter(|a| !a.is_empty()),
            whip_transcode_video: pick!(whip_transcode_video, false),
            ladder,
            demo_ladder,
            demo_ladder_is_default,
            ladder_encoder: pick!(ladder_encoder, "libx264".into()),
            dvr_dir: (dvr_secs > 0).then(|| data_dir.join("dvr")),
            data_dir: data_dir.clone(),
            dvr_keep_ended: Duration::from_secs(dvr_keep_ended),
            record: {
                let patterns = pick!(record, RecordPatterns::default()).0;
                (!patterns.is_empty()).then(|| llhls_origin::record::RecordConfig {
                    root: data_dir.join("recordings"),
                    patterns,
                    max_age: args
                        .record_max_age_secs
                        .or(file.record_max_age_secs)
                        .map(Duration::from_secs),
                    max_bytes: args.record_max_bytes.or(file.record_max_bytes),
                })
            },
        })
    }
}

impl Config {
    /// The settings for the admin API's `/api/v1/info`, secrets redacted: publish keys, the
    /// SRT passphrase and the admin token are never shown (only whether they are set), and
    /// webhook URLs lose their query and user info (which may carry a secret).
    pub fn redacted_json(&self) -> serde_json::Value {
        fn url(u: &llhls_ingest::webhook::WebhookUrl) -> String {
            let s = u.to_string();
            let s = s.split('?').next().unwrap_or("").to_string();
            match (s.find("://"), s.find('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}{}", &s[..scheme + 3], &s[at + 1..])
                }
                _ => s,
            }
        }
        let p = &self.packager;
        serde_json::json!({
            "http": self.http.to_string(),
            "rtmp": self.rtmp.to_string(),
            "srt": self.srt.map(|a| a.to_string()),
            "whip_udp": self.whip_udp.map(|a| a.to_string()),
            "tls": self.tls.is_some(),
            "demo": self.demo,
            "part_target_ms": p.part_target.as_millis() as u64,
            "segment_target_ms": p.segment_target.as_millis() as u64,
            "window_segments": p.window_segments,
            "dvr_window_secs": p.dvr_window.as_secs(),
            "dvr_keep_ended_secs": self.dvr_keep_ended.as_secs(),
            "layout": format!("{:?}", p.layout).to_lowercase(),
            "addressing": format!("{:?}", p.addressing).to_lowercase(),
            "delta_updates": p.delta_updates,
            "stall_filler": p.stall_filler,
            "ladder": self.ladder.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "record": self.record.as_ref().map(|r| r.patterns.clone()),
            "publish_keys": if self.publish_keys.is_empty() { "none" } else { "redacted" },
            "publish_keys_count": self.publish_keys.len(),
            "srt_passphrase": self.srt_passphrase.as_ref().map(|_| "redacted"),
            "reconnect_grace_secs": self.reconnect_grace.as_secs(),
            "max_connections": self.max_connections,
            "max_held_per_stream": self.max_held_per_stream,
            "auth_webhook": self.auth_webhook.as_ref().map(|a| serde_json::json!({
                "url": url(&a.url),
                "timeout_ms": a.timeout.as_millis() as u64,
                "fail": if a.fail_open { "open" } else { "closed" },
                "cache_secs": a.cache.as_secs(),
            })),
            "events_webhook": self.events_webhook.as_ref().map(|e| serde_json::json!({
                "url": url(&e.url),
                "timeout_ms": e.timeout.as_millis() as u64,
                "queue": e.queue,
            })),
            "playback_webhook": self.playback_webhook.as_ref().map(|(u, t)| serde_json::json!({
                "url": url(u),
                "timeout_ms": t.as_millis() as u64,
                "token_secs": self.playback_token_secs,
            })),
            "admin_token": self.admin_token.as_ref().map(|_| "redacted"),
        })
    }
}

/// The demo stream's ladder when neither `demo_ladder` nor `ladder` is configured.
pub const DEFAULT_DEMO_LADDER: [&str; 2] = ["360p", "240p"];

/// The rungs of a `ladder` setting: `off` alone, or rungs with distinct names.
fn rungs(what: &str, entries: Vec<LadderEntry>) -> anyhow::Result<Vec<RungSpec>> {
    if entries.contains(&LadderEntry::Off) {
        if entries.len() > 1 {
            bail!("{what}: `off` cannot be combined with rungs");
        }
        return Ok(Vec::new());
    }
    let ladder: Vec<RungSpec> = entries
        .into_iter()
        .filter_map(|e| match e {
            LadderEntry::Rung(r) => Some(r),
            LadderEntry::Off => None,
        })
        .collect();
    for r in &ladder {
        r.validate().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        if ladder.iter().filter(|o| o.name == r.name).count() > 1 {
            bail!("{what}: two rungs are called {}", r.name);
        }
    }
    Ok(ladder)
}

fn read_file(p: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(c.http.port(), 8080);
        assert_eq!(c.rtmp.port(), 1935);
        assert_eq!(c.packager.part_target, Duration::from_millis(200));
        assert!(c.publish_keys.is_empty());
        assert!(c.srt.is_none(), "SRT is off unless configured");
        assert_eq!(c.srt_latency, Duration::from_millis(120));
    }

    #[test]
    fn webhooks_and_admin_token() {
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert!(c.auth_webhook.is_none() && c.events_webhook.is_none() && c.admin_token.is_none());
        let c = Config::load(&ServeArgs {
            auth_webhook: Some("http://127.0.0.1:9/auth?secret=x".into()),
            auth_webhook_fail: Some("open".into()),
            events_webhook: Some("http://user:pw@10.0.0.5/events".into()),
            admin_token: Some("0123456789abcdef".into()),
            ..Default::default()
        })
        .unwrap();
        let a = c.auth_webhook.as_ref().unwrap();
        assert!(a.fail_open);
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert_eq!(a.cache, Duration::ZERO);
        assert_eq!(c.events_webhook.as_ref().unwrap().queue, 10_000);
        let shown = c.redacted_json().to_string();
        for secret in ["secret=x", "pw@", "0123456789abcdef"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for bad in [
            ServeArgs {
                auth_webhook: Some("https://example.net/".into()),
                ..Default::default()
            },
            ServeArgs {
                auth_webhook: Some("http://127.0.0.1/".into()),
                auth_webhook_fail: Some("maybe".into()),
                ..Default::default()
            },
            ServeArgs {
                events_webhook: Some("not a url".into()),
                ..Default::default()
            },
            ServeArgs {
                admin_token: Some("short".into()),
                ..Default::default()
            },
        ] {
            assert!(Config::load(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn srt_address_or_off() {
        let on = ServeArgs {
            srt: Some("127.0.0.1:9000".into()),
            srt_latency_ms: Some(300),
            ..Default::default()
        };
        let c = Config::load(&on).unwrap();
        assert_eq!(c.srt, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(c.srt_latency, Duration::from_millis(300));
        let off = ServeArgs {
            srt: Some("off".into()),
            ..Default::default()
        };
        assert!(Config::load(&off).unwrap().srt.is_none());
        let bad = ServeArgs {
            srt: Some("9000".into()),
            ..Default::default()
        };
        let e = Config::load(&bad).unwrap_err().to_string();
        assert!(e.contains("IP:PORT or `off`"), "{e}");
        let short = ServeArgs {
            srt_passphrase: Some("short".into()),
            ..Default::default()
        };
        let e = Config::load(&short).unwrap_err().to_string();
        assert!(e.contains("10 to 79"), "{e}");
    }

    #[test]
    fn ladder_from_flag_file_and_tables() {
        assert!(Config::load(&ServeArgs::default())
            .unwrap()
            .ladder
            .is_empty());
        let args = ServeArgs {
            ladder: Some(vec![
                parse_rung("720p").unwrap(),
                parse_rung("360p").unwrap(),
            ]),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        let names: Vec<&str> = c.ladder.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["720p", "360p"]);
        assert_eq!(c.ladder[0].video_kbps, 3000);
        assert_eq!(
            c.packager.layout,
            Layout::Separate,
            "a ladder selects separate"
        );
        assert!(parse_rung("999p").is_err());
        let dir = std::env::temp_dir().join(format!("llhls-cfg-ladder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load(&ServeArgs {
                config: Some(f.clone()),
                ..Default::default()
            })
        };
        let c = load("ladder = [\"480p\", { name = \"low\", height = 200, video_kbps = 300 }]\n")
            .unwrap();
        assert_eq!(c.ladder[1].name, "low");
        assert_eq!(c.ladder[1].height, 200);
        let c = load("ladder = \"540p,240p\"\n").unwrap();
        assert_eq!(c.ladder.len(), 2);
        assert!(load("ladder = \"off\"\n").unwrap().ladder.is_empty());
        let err = load("ladder = [\"480p\"]\nlayout = \"muxed\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("separate"), "{err:#}");
        assert!(load("ladder = [{ name = \"x\", height = 201, video_kbps = 300 }]\n").is_err());
        assert!(load("ladder = [\"360p\", \"360p\"]\n").is_err());
        // The flag's `off` overrides the file's ladder.
        std::fs::write(&f, "ladder = [\"480p\"]\n").unwrap();
        let c = Config::load(&ServeArgs {
            config: Some(f.clone()),
            ladder: Some(vec![LadderEntry::Off]),
            ..Default::default()
        })
        .unwrap();
        assert!(c.ladder.is_empty());
    }

    #[test]
    fn record_takes_a_flag_or_name_patterns() {
        let dir = std::env::temp_dir().join(format!("llhls-cfg-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load(&ServeArgs {
                config: Some(f.clone()),
                ..Default::default()
            })
        };
        assert!(load("").unwrap().record.is_none(), "off by default");
        assert!(load(
            "record = false
"
        )
        .unwrap()
        .record
        .is_none());
        let c = load(
            "record = true
data_dir = \"/srv/l\"
record_max_age_secs = 60
record_max_bytes = 1000
",
        )
        .unwrap();
        let r = c.record.unwrap();
        assert_eq!(r.root, PathBuf::from("/srv/l/recordings"));
        assert!(r.records("anything"));
        assert_eq!(r.max_age, Some(Duration::from_secs(60)));
        assert_eq!(r.max_bytes, Some(1000));
        let r = load(
            "record = [\"cam-*\", \"show\"]
",
        )
        .unwrap()
        .record
        .unwrap();
        assert!(r.records("cam-2") && r.records("show") && !r.records("demo"));
        let r = load(
            "record = \"cam-*,show\"
",
        )
        .unwrap()
        .record
        .unwrap();
        assert_eq!(r.patterns, ["cam-*", "show"]);
        assert!(load(
            "record = [\"../x\"]
"
        )
        .is_err());
        assert!(load(
            "record = 3
"
        )
        .is_err());
        // The flag (and LLHLS_RECORD) take the same forms.
        assert_eq!(parse_record("true").unwrap().0, ["*"]);
        assert!(parse_record("false").unwrap().0.is_empty());
        assert_eq!(parse_record("a,b*").unwrap().0, ["a", "b*"]);
        assert!(parse_record("a/b").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_demo_has_a_ladder_unless_told_otherwise() {
        let names = |c: &Config| {
            c.demo_ladder
                .as_ref()
                .map(|l| l.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        };
        // Nothing configured: the built-in two rungs, and the published streams stay as they were.
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(names(&c), Some(vec!["360p".into(), "240p".into()]));
        assert!(c.demo_ladder_is_default);
        assert!(c.ladder.is_empty());
        assert_eq!(c.packager.layout, Layout::Muxed);
        // `off`: none.
        let c = Config::load(&ServeArgs {
            demo_ladder: Some(vec![LadderEntry::Off]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(names(&c), Some(vec![]));
        assert!(!c.demo_ladder_is_default);
        // A ladder for every stream: the demo gets that one.
        let c = Config::load(&ServeArgs {
            ladder: Some(vec![parse_rung("480p").unwrap()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(names(&c), None);
        assert!(!c.demo_ladder_is_default);
        // Its own: as given.
        let c = Config::load(&ServeArgs {
            demo_ladder: Some(vec![parse_rung("540p").unwrap()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(names(&c), Some(vec!["540p".into()]));
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("llhls-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "part_target_ms = 300\nlayout = \"separate\"\npublish_keys = [\"a\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(f.clone()),
            part_target_ms: Some(250),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.packager.part_target, Duration::from_millis(250));
        assert_eq!(c.packager.layout, Layout::Separate);
        assert_eq!(c.publish_keys, vec!["a".to_string()]);
        // A comma-separated string works in TOML as it does for the flag.
        std::fs::write(&f, "publish_keys = \"a, b\"\n").unwrap();
        let c = Config::load(&ServeArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.publish_keys, vec!["a".to_string(), "b".to_string()]);
        // Test-only switches cannot be set from a file.
        std::fs::write(&f, "break_codecs = true\n").unwrap();
        assert!(Config::load(&ServeArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .is_err());
        std::fs::write(&f, "nonsense = 1\n").unwrap();
        assert!(Config::load(&ServeArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .is_err());
        // The DVR settings from a file: the window in seconds, the data directory.
        std::fs::write(&f, "dvr_window_secs = 120\ndata_dir = \"/srv/llhls\"\n").unwrap();
        let c = Config::load(&ServeArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.packager.dvr_window, Duration::from_secs(120));
        assert_eq!(c.dvr_dir, Some(PathBuf::from("/srv/llhls/dvr")));
        assert_eq!(
            c.dvr_keep_ended,
            Duration::from_secs(120),
            "an ended stream is kept as long as the window by default"
        );
        let c = Config::load(&ServeArgs::default()).unwrap();
        assert_eq!(c.packager.dvr_window, Duration::ZERO);
        assert_eq!(c.dvr_dir, None, "no DVR window, no data directory");
        let bad = ServeArgs {
            window_segments: Some(3),
            ..Default::default()
        };
        assert!(Config::load(&bad)
            .unwrap_err()
            .to_string()
            .contains("at least 6"));
    }
}
