#!/usr/bin/env node
// Player test: a real publisher (ffmpeg over RTMP, real time), `llhls serve`, optionally an
// nginx edge, and real hls.js players in Debian's headless Chromium. Measures what viewers
// notice and exits non-zero when playback breaks.
//
//   node player-test/run.mjs [--duration 20] [--players 1] [--edge [nginx|varnish]] [--layout muxed|separate]
//        [--part-target-ms 200] [--size 640x360] [--bframes] [--break-codecs] [--ladder 360p,240p]
//        [--llhls target/debug/llhls] [--out player-test/out/NAME] [--name NAME]
//        [--delay-ms 25]   (a delaying TCP proxy between the players and the server: 25 ms
//                           each way = 50 ms RTT; tc netem is not available on these VMs)
//        [--publisher rtmp|srt|whip-gst|whip-gst-sync|whip-chromium|whip-canvas] [--whip-audio aac|opus]
//        [--impair-loss 0.02] [--impair-reorder 0.05]  (Chromium publishers: their media goes
//                           through a UDP relay that drops and reorders RTP/RTCP packets;
//                           srt-sync: the same relay drops and reorders SRT data packets)
//        [--break-av-sync]  (negative control: llhls publishes WHIP audio 400 ms late)
//        [--player hlsjs|shaka|native] [--shaka-debug]  (hls.js 1.7 lowLatencyMode; Shaka 5.2 with
//                           streaming.lowLatencyMode, --shaka-debug loads its debug build for
//                           readable stacks; native: Chromium's built-in HLS, <video src=...m3u8>)
//        [--join early|late] (early: the viewer loads the stream as soon as the multivariant
//                           playlist first answers 200, polled every 50 ms from the publisher's
//                           start; late: 15 s after that; neither: load it once the playlist has
//                           answered 200, polled every 200 ms, after the edge/proxy are up)
//        [--join-delay 15] (the late join's wait after the first 200, in seconds)
//        [--player-debug] (hls.js with debug: true, and every MSE abort(), timestampOffset change,
//                           remove and append; the page's console in player-console.log)
//        [--hlsjs-config JSON] (hls.js config beside lowLatencyMode, e.g. '{"maxLiveSyncPlaybackRate":1.1}':
//                           what a site that lets hls.js catch up to its target latency gets)
//        [--max-height 360] (with --ladder: the player stays on the rendition of that height or
//                           below from its first fragment on: hls.js startLevel + autoLevelCapping,
//                           Shaka abr.restrictions.maxHeight; the latency of one rung)
//        [--strip-closed-captions] (the players see the multivariant without CLOSED-CAPTIONS=NONE)
//        [--slow-part 8:300[-400]] (every part with index 8 reaches the players 300 ms (to 400 ms,
//                           at random) late: a viewer whose link or machine is slow at the
//                           end of a segment)
//        [--audio-holes] (rtmp/srt publisher: its audio skips 100 ms every second; the packager
//                           fills the holes with silent frames, or Chromium's audio clock falls
//                           behind and its audio runs dry with media buffered)
//        [--stall 3 [--stall-at 20]]  (SIGSTOP the publisher's encoder for 3 s, 20 s after the
//                           viewer joined, then SIGCONT: it bursts its backlog; the run fails
//                           unless every player is back within 0.3 s of its pre-stall latency
//                           within 10 s of the resume, with no fatal error)
// Every run polls the media playlist every 200 ms and fails if the end of its last part
// (EXT-X-PROGRAM-DATE-TIME + durations) is more than 100 ms ahead of the wall clock.
//        [--playback-secret S [--token-per-viewer]]  (a private stream: llhls runs with --playback-secret S and the
//                           players get /live/t/TOKEN/test/index.m3u8, a token minted as the README
//                           shows; the run fails unless /live/test/... answers 403 and the token's
//                           signature stays out of llhls's log; --token-per-viewer gives each
//                           viewer its own token, the negative control for edge collapsing)
//        [--video-codec vp8|vp9]  (Chromium publishers offer only this codec; llhls runs with
//                           --whip-transcode-video true)
//
// Publishers: `rtmp` is ffmpeg over RTMP; `srt` the same ffmpeg sending MPEG-TS over SRT
// (caller mode, stream id publish:live/test) to llhls's SRT listener; `srt-sync` is ffmpeg over SRT
// with a flash and a beep each second (the lip-sync check; --impair-loss puts it behind a lossy relay); `whip-gst` is GStreamer's simple-whip-client (H.264 +
// Opus; `whip-gst-sync` replays files with a flash and a beep each second for the lip-sync check); `whip-chromium` is headless Chromium's fake camera and microphone over WHIP from a
// page on another origin; `whip-canvas` is Chromium publishing a synthetic source that carries
// the wall clock as a barcode (glass-to-glass latency, read back in the player page) and a
// flash with a beep every second (audio/video sync, measured on the packaged segments);
// `rtmp-clock` is ffmpeg over RTMP (x264 zerolatency, keyframe every second, 1280x720 unless
// --size) fed raw frames by clock-source.mjs, which carry the same wall-clock barcode; `srt-clock`
// is the same over SRT (MPEG-TS).
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { launchChromium, servePlayerPages, knownOpen, traceMediaSource } from './common.mjs';
import { mkdirSync, writeFileSync, readFileSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : def; };
const flag = (name) => args.includes('--' + name);

let duration = Number(opt('duration', '20'));
const nPlayers = Number(opt('players', '1'));
const useEdge = flag('edge');
// --edge alone is the nginx edge (player-test/nginx-edge.conf); --edge varnish is
// player-test/varnish-edge.vcl.
const edgeKind = useEdge && ['nginx', 'varnish'].includes(opt('edge', '')) ? opt('edge', '') : 'nginx';
// --ladder 360p,240p: the server transcodes an ABR ladder below the source (as the demo stream
// does), which needs the separate audio layout (the default with a ladder, as in llhls).
const ladder = opt('ladder', '');
const layout = opt('layout', ladder ? 'separate' : 'muxed');
const partMs = opt('part-target-ms', '200');
const publisherKind = opt('publisher', 'rtmp');
const size = opt('size', publisherKind.endsWith('-clock') ? '1280x720' : '640x360');
const playerKind = opt('player', 'hlsjs');
if (!['hlsjs', 'shaka', 'native'].includes(playerKind)) throw new Error(`unknown --player ${playerKind}`);
const join_ = opt('join', '');
if (!['', 'early', 'late'].includes(join_)) throw new Error(`unknown --join ${join_}`);
// --join-delay: the late join's wait after the first 200 (15 s unless given).
const joinDelaySecs = Number(opt('join-delay', '15'));
const stallSecs = Number(opt('stall', '0'));
const stallAt = Number(opt('stall-at', '20'));
// Checks of an open acceptance criterion, named in LLHLS_PLAYER_KNOWN (comma-separated), are
// reported as KNOWN-OPEN instead of failing the run: `stall-recovery` (back within 0.3 s of
// the pre-stall latency within 10 s of a publisher's resume; hls.js and Shaka stay 0.4 s and
// 1.1 s behind after rebuffering, issue 12).
const knownFailures = [];
// --playback-secret: every playlist and media URL goes under the stream's token path, minted
// per stream and hour (README, "Private streams"), so viewers and the edge share URLs.
const playbackSecret = opt('playback-secret', '');
const tokenExpires = (Math.floor(Date.now() / 3600000) + 2) * 3600;
const tokenSig = playbackSecret ? createHmac('sha256', playbackSecret).update(`test:${tokenExpires}`).digest('hex') : '';
const streamPath = playbackSecret ? `/live/t/${tokenExpires}-${tokenSig}/test` : '/live/test';
const name = opt('name', `${playbackSecret ? 'private-' : ''}${playerKind === 'hlsjs' ? '' : playerKind + '-'}${join_ ? join_ + '-' : ''}${stallSecs ? 'stall-' : ''}${useEdge ? (edgeKind === 'varnish' ? 'edge-varnish' : 'edge') : 'direct'}-${nPlayers}p-${layout}-${partMs}ms`);
const outDir = resolve(opt('out', join(here, 'out', name)));
const llhlsBin = resolve(opt('llhls', join(root, 'target', 'debug', 'llhls')));
mkdirSync(outDir, { recursive: true });

const delayMs = Number(opt('delay-ms', '0'));
const lossRate = Number(opt('impair-loss', '0'));
const reorderRate = Number(opt('impair-reorder', '0'));
const relayStats = { forwarded: 0, dropped: 0, reordered: 0 };
const whipAudio = opt('whip-audio', 'aac');
// A stall run needs 10 s of latency before the stall and the 10 s recovery window after it.
if (stallSecs > 0) {
  if (stallAt < 10) throw new Error('--stall-at must leave 10 s of playing before the stall');
  duration = Math.max(duration, stallAt + stallSecs + 12);
}
if (!['rtmp', 'srt', 'srt-sync', 'rtmp-clock', 'srt-clock', 'whip-gst', 'whip-gst-sync', 'whip-chromium', 'whip-canvas'].includes(publisherKind)) throw new Error(`unknown --publisher ${publisherKind}`);
const children = [];
const cleanup = () => {
  for (const c of children) {
    try { writeFileSync(join(outDir, c.logName), c.logText()); } catch {}
    try { c.kill('SIGKILL'); } catch {}
  }
};
process.on('exit', cleanup);
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const freePort = () => new Promise((res, rej) => {
  const s = net.createServer(); s.unref();
  s.on('error', rej);
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
function run(cmd, argv, logName, env = {}) {
  const log = [];
  const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  c.stdout.on('data', d => log.push(d)); c.stderr.on('data', d => log.push(d));
  c.on('exit', () => writeFileSync(join(outDir, logName), Buffer.concat(log)));
  children.push(c);
  c.logName = logName;
  c.logText = () => Buffer.concat(log).toString();
  return c;
}
async function waitFor(url, what, timeoutMs = 30000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try { const r = await fetch(url); if (r.ok) return; } catch {}
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what} (${url})`);
}

const httpPort = await freePort();
const rtmpPort = await freePort();
const whipPort = await freePort();
const srtPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const serverArgs = ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', `0.0.0.0:${whipPort}`, '--whip-audio', whipAudio,
  '--demo', 'false', '--layout', layout, '--part-target-ms', partMs];
if (publisherKind.startsWith('srt')) serverArgs.push('--srt', `127.0.0.1:${srtPort}`);
if (playbackSecret) serverArgs.push('--playback-secret', playbackSecret);
if (ladder) serverArgs.push('--ladder', ladder);
// --playback-webhook (with --playback-secret): the viewers open the plain URL with a session in
// its query; a webhook run here admits `session=ok` (and counts its calls), and llhls redirects
// each admitted viewer to the stream's token path, which the player must follow.
const viaWebhook = playbackSecret && flag('playback-webhook');
const webhookCalls = [];
if (viaWebhook) {
  const { createServer } = await import('node:http');
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', d => { body += d; });
    req.on('end', () => {
      let j = {};
      try { j = JSON.parse(body); } catch {}
      webhookCalls.push(j);
      const ok = String(j.query || '').includes('session=ok');
      res.writeHead(ok ? 204 : 403, { 'content-type': 'text/plain' });
      res.end(ok ? '' : 'no such session');
    });
  });
  const hookPort = await freePort();
  await new Promise(r => hook.listen(hookPort, '127.0.0.1', r));
  hook.unref();
  serverArgs.push('--playback-webhook', `http://127.0.0.1:${hookPort}/play`);
}
if (flag('break-codecs')) serverArgs.push('--break-codecs');
if (flag('break-av-sync')) serverArgs.push('--break-av-sync');
const videoCodec = opt('video-codec', '');
if (videoCodec) serverArgs.push('--whip-transcode-video', 'true');
const server = run(llhlsBin, serverArgs, 'llhls.log', { RUST_LOG: process.env.RUST_LOG || 'info' });
await waitFor(`${origin}/healthz`, 'llhls serve');

// Pages come from another origin (another port), so CORS is exercised for WHIP and HLS.
const { port: pagePort, server: pageServer } = await servePlayerPages({ shakaDebug: flag('shaka-debug') });
const browser = await launchChromium(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);

// One browser context per viewer: separate HTTP caches and connection pools, like separate
// people (in one page, Chromium would collapse identical requests and share 6 connections).
const consoleErrors = [];
const playerConsole = [];
const pages = [];
for (let i = 0; i < nPlayers; i++) {
  const ctx = await browser.newContext({ viewport: i === 0 ? { width: 1280, height: 720 } : { width: 400, height: 240 } });
  if (flag('player-debug')) await traceMediaSource(ctx);
  const p = await ctx.newPage();
  p.on('pageerror', e => consoleErrors.push(String(e)));
  // --player-debug: the player's own log (hls.js debug: true) in player-console.log.
  if (flag('player-debug')) p.on('console', m => playerConsole.push(`${Date.now()} ${m.type()} ${m.text()}`));
  pages.push(p);
}
const page = pages[0];

let publisher = null, publisherPage = null;
// The processes a --stall freezes: the encoder (ffmpeg, or GStreamer's client), not a capture.
let stallPids = [];
const publishStarted = Date.now();
if (publisherKind.endsWith('-clock')) {
  const to = publisherKind === 'srt-clock'
    ? ['--srt', `srt://127.0.0.1:${srtPort}?streamid=publish:live/test`]
    : ['--rtmp', `rtmp://127.0.0.1:${rtmpPort}/live/test`];
  publisher = run('node', [join(here, 'clock-source.mjs'), ...to, '--size', size], 'clock-source.log');
  const pid = await new Promise((res, rej) => {
    let buf = '';
    publisher.stdout.on('data', d => { buf += d; const m = buf.match(/ffmpeg-pid (\d+)/); if (m) res(Number(m[1])); });
    publisher.on('exit', () => rej(new Error('clock-source.mjs exited at start')));
  });
  stallPids = [pid];
} else if (publisherKind === 'srt-sync') {
  // ffmpeg in real time over SRT: a white flash and a 1 kHz beep together once a second
  // (keyframe every second) for the lip-sync check; with --impair-loss through the relay,
  // with a 500 ms SRT latency so that retransmissions can repair the losses.
  const to = (lossRate > 0 || reorderRate > 0) ? await startRelay(true) : `127.0.0.1:${srtPort}`;
  const latency = (lossRate > 0 || reorderRate > 0) ? '&latency=500000' : '';
  const ff = ['-hide_banner', '-v', 'error', '-re',
    '-f', 'lavfi', '-i', `color=c=0x202020:s=${size}:r=30,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),0.1)'`,
    '-f', 'lavfi', '-i', `sine=f=1000:sample_rate=48000,volume=volume=0:enable='gte(mod(t,1),0.1)'`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30',
    '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-b:v', '1000k', '-c:a', 'aac', '-b:a', '96k', '-ac', '2',
    '-f', 'mpegts', `srt://${to}?streamid=publish:live/test${latency}`];
  publisher = run('ffmpeg', ff, 'ffmpeg.log');
  stallPids = [publisher.pid];
} else if (publisherKind === 'rtmp' || publisherKind === 'srt') {
  // Real-time ffmpeg, H.264 + AAC, keyframe every second, wall clock in the picture.
  const font = '/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf';
  const vf = `drawtext=fontfile=${font}:text='%{localtime\\:%H\\\\\\:%M\\\\\\:%S}':fontsize=48:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=20`;
  const ff = ['-hide_banner', '-v', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-vf', vf,
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30',
    '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-b:v', '1500k',
    ...(flag('bframes') ? ['-bf', '2', '-x264-params', 'bframes=2'] : []),
    // --audio-holes: the audio skips the last 100 ms of every second (its timestamps jump, as
    // from a publisher that drops audio or whose audio clock runs slow), video goes on.
    ...(flag('audio-holes') ? ['-af', "aselect='lt(mod(t\\,1)\\,0.9)'"] : []),
    '-c:a', 'aac', '-b:a', '96k',
    ...(publisherKind === 'srt'
      ? ['-f', 'mpegts', `srt://127.0.0.1:${srtPort}?streamid=publish:live/test`]
      : ['-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/test`])];
  publisher = run('ffmpeg', ff, 'ffmpeg.log');
  stallPids = [publisher.pid];
} else if (publisherKind.startsWith('whip-gst')) {
  // Debian 12's simple-whip-client links libsoup 2 while libnice (through gupnp) links libsoup
  // 3, and libsoup 3 aborts at load when it sees libsoup 2. The shim hides libsoup 2 from that
  // one check (nothing here uses UPnP, the only libsoup 3 user); see whip-client-shim.c.
  const shimDir = mkdtempSync(join(tmpdir(), 'llhls-whipshim-'));
  const shim = join(shimDir, 'shim.so');
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', shim, join(here, 'whip-client-shim.c'), '-ldl']);
  if (cc.status !== 0) throw new Error(`building the whip-client shim failed: ${cc.stderr}`);
  const [w, h] = size.split('x');
  let video, audio;
  if (publisherKind === 'whip-gst-sync') {
    // Files with a white flash and a 1 kHz beep together once a second (keyframe every
    // second), replayed in real time: the lip-sync check then covers GStreamer's RTP
    // timestamps and sender reports.
    const secs = duration + 40;
    const vfile = join(outDir, 'sync-video.mkv'), afile = join(outDir, 'sync-audio.mkv');
    const gen = (args) => { const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args]); if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr}`); };
    gen(['-f', 'lavfi', '-i', `color=c=0x202020:s=${size}:r=30:d=${secs},drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),0.1)'`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-profile:v', 'baseline', '-g', '30', '-pix_fmt', 'yuv420p', vfile]);
    gen(['-f', 'lavfi', '-i', `sine=f=1000:sample_rate=48000:d=${secs},volume=volume=0:enable='gte(mod(t,1),0.1)'`,
      '-ac', '2', '-c:a', 'libopus', '-b:a', '64k', afile]);
    video = `filesrc location=${vfile} ! matroskademux ! h264parse ! identity sync=true ! rtph264pay pt=96 ssrc=2 config-interval=-1 ! queue ! application/x-rtp,media=video,encoding-name=H264,payload=96`;
    audio = `filesrc location=${afile} ! matroskademux ! opusparse ! identity sync=true ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111`;
  } else {
    // A live encoder with a 20 s keyframe interval: segments start on time only through our
    // keyframe requests (RTCP PLI).
    video = `videotestsrc is-live=true pattern=ball ! video/x-raw,width=${w},height=${h},framerate=30/1 ! videoconvert ! queue ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=600 ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=96 ssrc=2 config-interval=-1 ! queue ! application/x-rtp,media=video,encoding-name=H264,payload=96`;
    audio = 'audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111';
  }
  publisher = run('whip-client', ['-u', `${origin}/whip/live/test`, '-n', '-l', '3', '-V', video, '-A', audio],
    'whip-client.log', { LD_PRELOAD: shim });
  stallPids = [publisher.pid];
} else {
  const ctx = await browser.newContext();
  publisherPage = await ctx.newPage();
  publisherPage.on('pageerror', e => console.error('publisher page error:', String(e)));
  const source = publisherKind === 'whip-canvas' ? 'canvas' : 'fake';
  const relay = (lossRate > 0 || reorderRate > 0) ? `&relay=${await startRelay()}` : '';
  const codec = videoCodec ? `&codec=${videoCodec}` : '';
  await publisherPage.goto(`http://127.0.0.1:${pagePort}/publish?source=${source}${relay}${codec}&endpoint=${encodeURIComponent(`${origin}/whip/live/test`)}`);
}
if (stallSecs > 0 && !stallPids.length) throw new Error(`--stall is not supported with --publisher ${publisherKind}`);

try {
  await waitFor(`${origin}${streamPath}/index.m3u8`, 'the first playlist', 30000, join_ === 'early' ? 50 : 200);
} catch (e) {
  if (publisherPage) console.error('publisher state:', JSON.stringify(await publisherPage.evaluate(() => window.__pub)));
  throw e;
}
const firstPlaylistAt = Date.now();
const firstPlaylistMs = firstPlaylistAt - publishStarted;

// The stream's clock against the wall clock: every 200 ms, the end of the media playlist's last
// part (its segment's EXT-X-PROGRAM-DATE-TIME plus the durations after it) minus Date.now() at
// the response. Positive = the playlist claims media from the future.
const pdt = { polls: 0, maxLeadMs: null, maxLeadAt: null, noPdt: 0, samples: [] };
const mediaPlaylistUrl = async () => {
  const mv = await (await fetch(`${origin}${streamPath}/index.m3u8`)).text();
  const uri = mv.split('\n').find(l => l && !l.startsWith('#')) || 'media.m3u8';
  return mv.includes('#EXTINF') ? `${origin}${streamPath}/index.m3u8` : new URL(uri.trim(), `${origin}${streamPath}/index.m3u8`).href;
};
function lastPartEnd(text) {
  let cur = null, seg = 0, parts = 0;
  for (const l of text.split('\n')) {
    if (l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) cur = Date.parse(l.slice(25));
    else if (l.startsWith('#EXTINF:')) seg = parseFloat(l.slice(8)) * 1000;
    else if (l.startsWith('#EXT-X-PART:')) { const m = l.match(/DURATION=([\d.]+)/); if (m) parts += parseFloat(m[1]) * 1000; }
    else if (l && !l.startsWith('#')) { if (cur !== null) cur += seg; seg = 0; parts = 0; }
  }
  return cur === null ? null : cur + parts;
}
let pdtPolling = true;
const pdtPoller = (async () => {
  const url = await mediaPlaylistUrl();
  while (pdtPolling) {
    try {
      const text = await (await fetch(url)).text();
      const now = Date.now();
      // The playlist a viewer joining right now would get first, for the report.
      if (pdt.polls === 0) writeFileSync(join(outDir, 'first-media.m3u8'), `# fetched ${now - firstPlaylistAt} ms after the multivariant's first 200\n${text}`);
      const end = lastPartEnd(text);
      pdt.polls++;
      if (end === null) pdt.noPdt++;
      else {
        const lead = end - now;
        pdt.samples.push([now, Math.round(lead)]);
        if (pdt.maxLeadMs === null || lead > pdt.maxLeadMs) { pdt.maxLeadMs = Math.round(lead); pdt.maxLeadAt = now; pdt.maxLeadPlaylist = text; }
      }
    } catch {}
    await sleep(200);
  }
})();

// Optional edge cache in front of the origin: nginx or Varnish.
let playBase = origin;
let edgeProc = null, edgeDir = null;
if (useEdge && edgeKind === 'varnish') {
  edgeDir = mkdtempSync(join(tmpdir(), 'llhls-edge-'));
  const edgePort = await freePort();
  // The shipped VCL with this run's origin port; varnishd in the foreground with its working
  // directory in the temp folder.
  const vcl = readFileSync(join(here, 'varnish-edge.vcl'), 'utf8').replace('.port = "8080";', `.port = "${httpPort}";`);
  if (!vcl.includes(`.port = "${httpPort}";`)) throw new Error('varnish-edge.vcl no longer has the line this harness rewrites');
  writeFileSync(join(edgeDir, 'llhls-edge.vcl'), vcl);
  // Run as root, varnishd reads the VCL and its working directory as its own unprivileged users.
  chmodSync(edgeDir, 0o755);
  edgeProc = run('varnishd', ['-F', '-a', `127.0.0.1:${edgePort}`, '-f', join(edgeDir, 'llhls-edge.vcl'), '-n', join(edgeDir, 'work'),
    '-s', 'malloc,256m'], 'varnish.log');
  playBase = `http://127.0.0.1:${edgePort}`;
  await waitFor(`${playBase}/live/test/index.m3u8`, 'the Varnish edge');
} else if (useEdge) {
  edgeDir = mkdtempSync(join(tmpdir(), 'llhls-edge-'));
  const edgePort = await freePort();
  // The shipped conf.d file, with this run's port, origin and cache folder, inside a minimal
  // main configuration that keeps every nginx file in the temp folder.
  const edge = readFileSync(join(here, 'nginx-edge.conf'), 'utf8')
    .replace('proxy_cache_path /var/cache/llhls ', `proxy_cache_path ${join(edgeDir, 'cache')} `)
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${httpPort};`)
    .replace('listen 80;', `listen 127.0.0.1:${edgePort};`);
  if (!edge.includes(edgeDir) || !edge.includes(`:${httpPort};`) || !edge.includes(`:${edgePort};`)) throw new Error('nginx-edge.conf no longer has the lines this harness rewrites');
  writeFileSync(join(edgeDir, 'llhls-edge.conf'), edge);
  const conf = [
    'worker_processes 1;', 'daemon off;',
    // As root, nginx's workers would drop to `nobody` and could not write the cache here.
    ...(process.getuid && process.getuid() === 0 ? ['user root;'] : []),
    `pid ${edgeDir}/nginx.pid;`, `error_log ${edgeDir}/error.log warn;`,
    'events { worker_connections 4096; }',
    'http {', `  access_log ${edgeDir}/access.log;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(t => `  ${t}_temp_path ${edgeDir}/${t}_temp;`),
    `  include ${join(edgeDir, 'llhls-edge.conf')};`, '}', ''].join('\n');
  writeFileSync(join(edgeDir, 'nginx.conf'), conf);
  edgeProc = run('nginx', ['-c', join(edgeDir, 'nginx.conf'), '-p', edgeDir], 'nginx.log');
  playBase = `http://127.0.0.1:${edgePort}`;
  await waitFor(`${playBase}${streamPath}/index.m3u8`, 'the nginx edge');
}

// Optional link delay: every chunk is held delayMs in each direction (order preserved).
if (delayMs > 0) {
  const target = new URL(playBase);
  const proxy = net.createServer(client => {
    const upstream = net.connect(Number(target.port), target.hostname);
    // Timers of equal delay fire in creation order, so the byte order is kept.
    const pipe = (from, to) => {
      from.on('data', d => setTimeout(() => { if (!to.destroyed) to.write(d); }, delayMs));
      from.on('close', () => setTimeout(() => to.destroy(), delayMs));
      from.on('error', () => {});
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  const proxyPort = await freePort();
  await new Promise(r => proxy.listen(proxyPort, '127.0.0.1', r));
  playBase = `http://127.0.0.1:${proxyPort}`;
}

const src = `${playBase}${streamPath}/index.m3u8`;
const metricValue = async (name) => {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
};
// A lossy link for WebRTC: a UDP relay between the publisher and llhls's WHIP port that drops
// and reorders the publisher's RTP/RTCP (first byte 128-191, RFC 7983); STUN and DTLS pass
// untouched so the session still comes up. The publisher page swaps the answer's candidate
// for the relay's address. Returns "IP:PORT".
// The relay sits in front of `port` (WHIP's UDP port by default; SRT's with `srt`): it drops
// and reorders the publisher's media datagrams (RTP for WHIP; SRT data packets, first bit 0,
// retransmissions included, for SRT) and passes everything else both ways.
async function startRelay(srt = false) {
  const dgram = await import('node:dgram');
  const { networkInterfaces } = await import('node:os');
  const ip = srt ? '127.0.0.1' : (Object.values(networkInterfaces()).flat().find(a => a && a.family === 'IPv4' && !a.internal)?.address || '127.0.0.1');
  const port = srt ? srtPort : whipPort;
  const isMedia = srt ? (m) => m.length > 0 && (m[0] & 0x80) === 0 : (m) => m[0] >= 128 && m[0] <= 191;
  const sock = dgram.createSocket('udp4');
  await new Promise(r => sock.bind(0, ip, r));
  let client = null, held = null;
  sock.on('message', (msg, rinfo) => {
    if (rinfo.port === port && rinfo.address === ip) {
      if (client) sock.send(msg, client.port, client.address);
      return;
    }
    client = rinfo;
    const media = isMedia(msg);
    if (media && Math.random() < lossRate) { relayStats.dropped++; return; }
    if (media && !held && Math.random() < reorderRate) { held = msg; relayStats.reordered++; return; }
    relayStats.forwarded++;
    sock.send(msg, port, ip);
    if (held) { const h = held; held = null; sock.send(h, port, ip); }
  });
  children.push({ kill: () => sock.close(), logName: 'relay.log', logText: () => JSON.stringify(relayStats) });
  return `${ip}:${sock.address().port}`;
}

// Audio/video sync of the packaged stream: fetch the init section and the complete segments
// from the origin, decode them with ffmpeg, find each white flash (frame luma) and each beep
// onset (10 ms RMS windows), and pair them. Positive: the beep comes after the flash.
async function measureAvSync() {
  const pl = await (await fetch(`${origin}${streamPath}/media.m3u8`)).text();
  writeFileSync(join(outDir, 'media.m3u8'), pl);
  const map = pl.match(/#EXT-X-MAP:URI="([^"]+)"/);
  const segs = pl.split('\n').filter(l => l && !l.startsWith('#'));
  if (!map || segs.length < 2) return { pairs: 0, reason: 'no segments' };
  const parts = [Buffer.from(await (await fetch(`${origin}${streamPath}/${map[1]}`)).arrayBuffer())];
  for (const u of segs) parts.push(Buffer.from(await (await fetch(`${origin}${streamPath}/${u}`)).arrayBuffer()));
  const file = join(outDir, 'avsync.mp4');
  writeFileSync(file, Buffer.concat(parts));
  const ff = (filter, stream) => spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-i', file, '-map', stream,
    ...(stream === '0:v' ? ['-vf', filter] : ['-af', filter]), '-f', 'null', '-'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
  const series = (text, key) => {
    const out = []; let t = null;
    for (const line of text.split('\n')) {
      const m = line.match(/pts_time:([-\d.]+)/); if (m) t = Number(m[1]);
      const v = line.match(new RegExp(key.replace(/\./g, '\\.') + '=([-\\w.]+)')); if (v && t !== null) out.push([t, Number(v[1])]);
    }
    return out;
  };
  const luma = series(ff('signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-', '0:v'), 'lavfi.signalstats.YAVG');
  const rms = series(ff('asetnsamples=n=480,astats=metadata=1:reset=1,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-', '0:a'), 'lavfi.astats.Overall.RMS_level')
    .map(([t, v]) => [t, Number.isFinite(v) ? v : -200]);
  // Rising edges with hysteresis; a signal already high at the start is not an onset.
  const onsets = (xs, hi, lo) => {
    const o = []; let on = xs.length > 0 && xs[0][1] > lo;
    for (const [t, v] of xs) { if (!on && v > hi) { o.push(t); on = true; } else if (on && v < lo) on = false; }
    return o;
  };
  const flashes = onsets(luma, 150, 100);
  const beeps = onsets(rms, -30, -45);
  const diffs = [];
  for (const f of flashes) {
    const b = beeps.reduce((best, x) => Math.abs(x - f) < Math.abs(best - f) ? x : best, Infinity);
    if (Math.abs(b - f) < 0.5) diffs.push(Math.round((b - f) * 1000));
  }
  diffs.sort((a, b) => a - b);
  return { pairs: diffs.length, flashes: flashes.length, beeps: beeps.length, medianMs: diffs.length ? diffs[Math.floor(diffs.length / 2)] : null, diffsMs: diffs };
}
const procCpu = (pid) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return 0; }
};
const idleCpu = () => { const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) }; };
const partsBefore = await metricValue('llhls_parts_published_total');
const cpu0 = procCpu(server.pid), sys0 = idleCpu(), t0 = Date.now();
const hasBarcode = publisherKind === 'whip-canvas' || publisherKind.endsWith('-clock');
const barcode = hasBarcode ? '&barcode=1' : '';
// Every request the players make and its answer, for the report (what a player asked for
// before it failed).
const requestLog = [];
for (const p of pages) {
  // 'response' carries the status (awaiting request.response() costs a round trip each).
  p.on('response', r => { if (r.url().startsWith(playBase) && requestLog.length <= 3000) requestLog.push({ t: Date.now(), url: r.url().slice(playBase.length), status: r.status() }); });
  p.on('requestfailed', r => { if (r.url().startsWith(playBase) && requestLog.length <= 3000) requestLog.push({ t: Date.now(), url: r.url().slice(playBase.length), failed: r.failure()?.errorText }); });
}
// --slow-part INDEX:MS[-MAX]: every part of that index (in every segment) is answered MS (to
// MAX, at random) late, as to a viewer on a slow link or a busy machine; the playlists are not
// delayed.
if (opt('slow-part', '')) {
  const [index, range] = opt('slow-part', '').split(':');
  const [lo, hi] = range.split('-').map(Number);
  for (const p of pages) {
    await p.route(new RegExp(`\\.${index}\\.m4s(\\?|$)`), async route => { await sleep(lo + Math.random() * ((hi ?? lo) - lo)); await route.continue(); });
  }
}
// --strip-closed-captions: the players get the multivariant playlist without
// CLOSED-CAPTIONS=NONE (as from a server that leaves it out), to show what that attribute
// prevents (Shaka's caption probing of a young live playlist; README, player notes).
if (flag('strip-closed-captions')) {
  for (const p of pages) {
    await p.route(`${playBase}${streamPath}/index.m3u8`, async route => {
      const r = await route.fetch();
      await route.fulfill({ response: r, body: (await r.text()).replaceAll(',CLOSED-CAPTIONS=NONE', '') });
    });
  }
}
// Chromium's media log (what chrome://media-internals shows) through the DevTools protocol:
// the native player's only account of why it failed. Kept for every player.
const mediaLog = [];
for (const p of pages) {
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('Media.enable');
  const keep = (kind, e) => { if (mediaLog.length < 2000) mediaLog.push({ t: Date.now(), kind, ...e }); };
  cdp.on('Media.playerMessagesLogged', e => e.messages.forEach(m => keep('message', { level: m.level, message: m.message })));
  cdp.on('Media.playerErrorsRaised', e => e.errors.forEach(x => keep('error', { error: x })));
  cdp.on('Media.playerPropertiesChanged', e => e.properties.forEach(x => keep('property', { name: x.name, value: x.value })));
}
if (join_ === 'late') await sleep(Math.max(0, firstPlaylistAt + joinDelaySecs * 1000 - Date.now()));
const joinedAt = Date.now();
const joinAfterFirstPlaylistMs = joinedAt - firstPlaylistAt;
// --token-per-viewer (with --playback-secret): each viewer gets its own token (expiry one
// second apart), as a site minting tokens per viewer would: the negative control of the edge
// collapsing measured with tokens (every viewer's URLs differ, so the edge cannot share them).
const viewerSrc = (i) => {
  if (viaWebhook) return `${playBase}/live/test/index.m3u8?session=ok`;
  if (!playbackSecret || !flag('token-per-viewer')) return src;
  const exp = tokenExpires + i;
  const sig = createHmac('sha256', playbackSecret).update(`test:${exp}`).digest('hex');
  return `${playBase}/live/t/${exp}-${sig}/test/index.m3u8`;
};
await Promise.all(pages.map((p, i) => p.goto(`http://127.0.0.1:${pagePort}/?n=1${barcode}&player=${playerKind}${flag('player-debug') ? '&debug=1' : ''}${opt('hlsjs-config') ? `&hlsjs=${encodeURIComponent(opt('hlsjs-config'))}` : ''}${opt('max-height') ? `&maxHeight=${opt('max-height')}` : ''}&src=${encodeURIComponent(viewerSrc(i))}`)));
let stallStart = null, stallEnd = null;
if (stallSecs > 0) {
  await sleep(Math.max(0, joinedAt + stallAt * 1000 - Date.now()));
  stallStart = Date.now();
  for (const pid of stallPids) process.kill(pid, 'SIGSTOP');
  await sleep(stallSecs * 1000);
  for (const pid of stallPids) process.kill(pid, 'SIGCONT');
  stallEnd = Date.now();
}
await sleep(Math.max(0, joinedAt + duration * 1000 - Date.now()));
pdtPolling = false;
await pdtPoller;
const partsDuringRun = (await metricValue('llhls_parts_published_total')) - partsBefore;
const serverCpuPercent = Number(((procCpu(server.pid) - cpu0) / ((Date.now() - t0) / 1000) * 100).toFixed(1));
const sys1 = idleCpu();
const machineBusyPercent = Number((100 * (1 - (sys1.idle - sys0.idle) / (sys1.total - sys0.total))).toFixed(1));
const stats = (await Promise.all(pages.map(p => p.evaluate(() => window.__stats())))).flat();
await page.screenshot({ path: join(outDir, 'screenshot.png') });
const avSync = publisherKind.startsWith('whip') || publisherKind === 'srt-sync' ? await measureAvSync() : null;
for (const s of stats) s.requests = s.requests?.length ? s.requests : undefined;
if (publisherPage) {
  // End the WHIP session the way a publisher does: DELETE on its resource.
  await publisherPage.evaluate(() => window.__stop());
}
await browser.close();
pageServer.close();

const metrics = await (await fetch(`${origin}/metrics`)).text();
const counter = (cls) => [...metrics.matchAll(new RegExp(`llhls_requests_total\\{class="${cls}",status="\\d+"\\} (\\d+)`, 'g'))]
  .reduce((a, m) => a + Number(m[1]), 0);
const originRequests = {
  blocking_playlist: counter('blocking_playlist'), playlist: counter('playlist'),
  part: counter('part'), segment: counter('segment'), init: counter('init'),
};

const privateChecks = { failures: [] };
if (playbackSecret) {
  // Private: the stream without its token is refused, and the token never reaches the log.
  const bare = await fetch(`${origin}/live/test/index.m3u8`);
  privateChecks.withoutTokenStatus = bare.status;
  if (bare.status !== 403) privateChecks.failures.push(`a private stream answered ${bare.status} without its token`);
  const bad = await fetch(`${origin}/live/t/${tokenExpires}-${'0'.repeat(64)}/test/index.m3u8`);
  if (bad.status !== 403) privateChecks.failures.push(`a private stream answered ${bad.status} to a wrong token`);
  if (server.logText().includes(tokenSig.slice(8))) privateChecks.failures.push('the playback token appears in llhls.log');
  if (viaWebhook) {
    // Each viewer was admitted by the webhook (once: media playlists and parts never ask it),
    // and a session it refuses gets a 403 with its reason.
    const admitted = webhookCalls.filter(c => String(c.query || '').includes('session=ok')).length;
    privateChecks.webhookAdmitted = admitted;
    if (admitted < nPlayers || admitted > 3 * nPlayers) privateChecks.failures.push(`the playback webhook admitted ${admitted} times for ${nPlayers} viewers`);
    const refused = await fetch(`${origin}/live/test/index.m3u8?session=nope`);
    if (refused.status !== 403 || !(await refused.text()).includes('no such session')) privateChecks.failures.push(`a session the webhook refuses got ${refused.status}`);
  }
}
publisher?.kill('SIGINT');
// nginx stops gracefully on SIGQUIT; varnishd's manager on SIGTERM (it stops its child too).
if (edgeProc) edgeProc.kill(edgeKind === 'varnish' ? 'SIGTERM' : 'SIGQUIT');
server.kill('SIGTERM');
await sleep(500);
if (edgeDir) rmSync(edgeDir, { recursive: true, force: true });

const pct = (xs, p) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
const all = (k) => stats.flatMap(s => s[k]);
const wall = all('wallLatency'), hl = all('latency');
const summary = {
  name, player: playerKind, join: join_ || 'default', joinAfterFirstPlaylistMs, players: nPlayers, edge: useEdge ? edgeKind : false, linkDelayMsEachWay: delayMs, layout, partTargetMs: Number(partMs), durationSecs: duration,
  firstPlaylistMsAfterPublish: firstPlaylistMs,
  timeToFirstFrameMs: pct(stats.map(s => s.firstFrameMs).filter(x => x !== null), 50),
  wallLatencyP50: pct(wall, 50), wallLatencyP95: pct(wall, 95),
  hlsLatencyP50: pct(hl, 50), targetLatency: stats[0]?.targetLatency,
  stalls: stats.reduce((a, s) => a + s.stalls, 0),
  seekWaits: stats.reduce((a, s) => a + (s.seekWaits || 0), 0),
  stallMs: Math.round(stats.reduce((a, s) => a + s.stallMs, 0)),
  droppedFrames: stats.reduce((a, s) => a + s.droppedFrames, 0),
  totalFrames: stats.reduce((a, s) => a + s.totalFrames, 0),
  errors: stats.reduce((a, s) => a + s.errors.length, 0),
  fatal: stats.map(s => s.fatal).filter(Boolean),
  publisher: publisherKind,
  audioDecodedBytes: stats.reduce((a, s) => a + (s.audioBytes || 0), 0),
  videoDecodedBytes: stats.reduce((a, s) => a + (s.videoBytes || 0), 0),
  glassToGlassP50: pct(all('g2g'), 50), glassToGlassP95: pct(all('g2g'), 95), glassToGlassSamples: all('g2g').length,
  avSync,
  pdtMaxLeadMs: pdt.maxLeadMs, pdtPolls: pdt.polls, pdtPollsWithoutPdt: pdt.noPdt,
  relay: (lossRate > 0 || reorderRate > 0) ? { lossRate, reorderRate, ...relayStats } : null,
  originRequests,
  serverCpuPercentOfOneCore: serverCpuPercent,
  machineBusyPercent,
};
// Origin requests per published part: how well the edge collapses viewers' requests. A
// direct viewer makes about two (the blocking playlist and the part itself).
summary.partsPublishedDuringRun = partsDuringRun;
summary.originRequestsPerPart = partsDuringRun > 0
  ? Number(((originRequests.blocking_playlist + originRequests.part) / partsDuringRun).toFixed(2)) : null;
summary.originRequestsPerPartPerPlayer = summary.originRequestsPerPart !== null
  ? Number((summary.originRequestsPerPart / nPlayers).toFixed(3)) : null;
const failures = [];
// Stall recovery, per player, on the glass-to-glass series when the frames carry the clock
// (the PDT-based one trusts the server's clock, which is part of what is checked), else on the
// wall latency from the player's PDT API.
const median = (xs) => pct(xs, 50);
if (stallSecs > 0) {
  summary.stall = { secs: stallSecs, atMsAfterJoin: stallStart - joinedAt, perPlayer: [] };
  for (const [i, s] of stats.entries()) {
    const series = s.g2gT?.length ? s.g2gT : s.wallT;
    const basis = s.g2gT?.length ? 'glass-to-glass' : 'wall latency (PDT)';
    const pre = median(series.filter(([t]) => t >= stallStart - 10000 && t < stallStart).map(x => x[1]));
    const after = series.filter(([t]) => t >= stallStart);
    const maxAfter = after.length ? Math.max(...after.map(x => x[1])) : null;
    // Back: the first sample after the resume from which every later sample is within 0.3 s.
    let backAt = null;
    if (pre !== null) {
      const post = series.filter(([t]) => t >= stallEnd);
      for (let j = post.length - 1; j >= 0 && Math.abs(post[j][1] - pre) <= 0.3; j--) backAt = post[j][0];
      if (post.length && Math.abs(post[post.length - 1][1] - pre) > 0.3) backAt = null;
    }
    const lastSample = series.length ? series[series.length - 1][0] : null;
    const st = s.stallTimes || [];
    const r = { basis, preStallP50: pre, maxAfter, backWithinMsOfResume: backAt === null ? null : backAt - stallEnd,
      lastSampleMsAfterResume: lastSample === null ? null : lastSample - stallEnd,
      stallsBefore: st.filter(t => t < stallStart).length,
      stallsDuringStallAndRecovery: st.filter(t => t >= stallStart && t <= stallEnd + 10000).length,
      stallsAfterRecoveryWindow: st.filter(t => t > stallEnd + 10000).length };
    summary.stall.perPlayer.push(r);
    if (pre === null) failures.push(`player ${i}: no ${basis} samples in the 10 s before the stall`);
    else if (r.backWithinMsOfResume === null || r.backWithinMsOfResume > 10000)
      (knownOpen.has('stall-recovery') ? knownFailures : failures).push(`player ${i}: not back within 0.3 s of its pre-stall ${basis} (${pre.toFixed(2)} s) within 10 s of the resume (max after ${maxAfter?.toFixed(2)} s, back after ${r.backWithinMsOfResume === null ? 'never' : r.backWithinMsOfResume + ' ms'})`);
    if (r.lastSampleMsAfterResume === null || r.lastSampleMsAfterResume < 10000)
      failures.push(`player ${i}: no ${basis} samples 10 s after the resume (last ${r.lastSampleMsAfterResume} ms after)`);
  }
}
if (pdt.maxLeadMs === null) failures.push('the media playlist never carried EXT-X-PROGRAM-DATE-TIME');
else if (pdt.maxLeadMs > 100) {
  failures.push(`EXT-X-PROGRAM-DATE-TIME ran ${pdt.maxLeadMs} ms ahead of the wall clock (end of the last part vs Date.now(), ${pdt.maxLeadAt - joinedAt} ms after the join)`);
  writeFileSync(join(outDir, 'pdt-ahead.m3u8'), pdt.maxLeadPlaylist);
}
for (const [i, s] of stats.entries()) {
  if (s.fatal) failures.push(`player ${i}: fatal ${playerKind} error ${s.fatal}`);
  if (s.firstFrameMs === null) failures.push(`player ${i}: never started playing`);
  else {
    const played = s.progressAt.length ? s.progressAt[s.progressAt.length - 1] - s.progressAt[0] : 0;
    if (played < duration / 4) failures.push(`player ${i}: played only ${played.toFixed(1)} s of a ${duration} s run`);
  }
  const prog = s.progressAt;
  if (prog.length >= 4 && prog[prog.length - 1] - prog[0] < (prog.length / 2) * 0.5) failures.push(`player ${i}: playback did not progress (${prog[0]} -> ${prog[prog.length - 1]} s)`);
  // In a stall run, the player may wait while the publisher is stopped and recovering; a stall
  // before or after that window still fails the run.
  const counted = stallSecs > 0 ? (s.stallTimes || []).filter(t => t < stallStart || t > stallEnd + 10000).length : s.stalls;
  if (counted > 0) failures.push(`player ${i}: ${counted} stall(s) after start${stallSecs > 0 ? ' outside the publisher stall and its 10 s recovery' : ''} (${Math.round(s.stallMs)} ms waiting in all)`);
}
if (consoleErrors.length) failures.push(`page errors: ${consoleErrors.join('; ')}`);
for (const [i, s] of stats.entries()) {
  // Chromium counts decoded bytes per track: a stream that lost its audio plays silently.
  if (!s.audioBytes) failures.push(`player ${i}: no audio was decoded`);
  if (!s.videoBytes) failures.push(`player ${i}: no video was decoded`);
}
const syncChecked = publisherKind === 'whip-canvas' || publisherKind.endsWith('-sync');
// A lossy run that lost nothing proves nothing (the relay was not in the path).
if (lossRate >= 0.01 && relayStats.dropped === 0) failures.push('--impair-loss: the relay dropped no packet');
if (hasBarcode && !summary.glassToGlassSamples) failures.push('no barcode was read back from the played video');
if (syncChecked) {
  // Lip sync: ITU-R BT.1359 puts acceptability at 90 ms audio-early and 185 ms audio-late
  // (detectability at 45 / 125 ms). The measurement itself carries the publisher's capture
  // offset and, on a lossy link, flashes whose first frame was lost (about -30 ms each).
  if (!avSync || avSync.pairs < 3) failures.push(`audio/video sync: too few flash/beep pairs (${JSON.stringify(avSync)})`);
  else if (avSync.medianMs < -90 || avSync.medianMs > 185) failures.push(`audio/video out of sync: beep - flash median ${avSync.medianMs} ms`);
}
if (playbackSecret) { summary.private = { withoutTokenStatus: privateChecks.withoutTokenStatus, webhookAdmitted: privateChecks.webhookAdmitted }; failures.push(...privateChecks.failures); }
summary.failures = failures;
summary.knownOpen = knownFailures;
if (playerConsole.length) writeFileSync(join(outDir, 'player-console.log'), playerConsole.map(l => l.replace(/^(\d+)/, (_, t) => String(Number(t) - joinedAt))).join('\n'));
writeFileSync(join(outDir, 'report.json'), JSON.stringify({ summary, players: stats, requests: requestLog.map(r => ({ ...r, t: r.t - joinedAt })), mediaLog: mediaLog.map(r => ({ ...r, t: r.t - joinedAt })), pdtSamples: pdt.samples.map(([t, l]) => [t - joinedAt, l]) }, null, 2));
const f = (x) => x === null || x === undefined ? 'n/a' : Number(x).toFixed(2);
const g2g = summary.glassToGlassSamples ? `, glass-to-glass p50 ${f(summary.glassToGlassP50)} s p95 ${f(summary.glassToGlassP95)} s` : '';
const sync = avSync ? `, A/V sync (beep - flash) median ${avSync.medianMs} ms over ${avSync.pairs}` : '';
const stallTxt = summary.stall ? summary.stall.perPlayer.map(r => `, stall ${stallSecs} s: before ${f(r.preStallP50)} s, max after ${f(r.maxAfter)} s, back after ${r.backWithinMsOfResume === null ? 'never' : (r.backWithinMsOfResume / 1000).toFixed(1) + ' s'}`).join('') : '';
console.log(`${failures.length ? 'FAIL' : 'PASS'} ${name} [${playerKind}, join ${summary.join} +${(joinAfterFirstPlaylistMs / 1000).toFixed(1)} s, ${publisherKind}]: PDT max lead ${pdt.maxLeadMs} ms${stallTxt}, wall latency p50 ${f(summary.wallLatencyP50)} s p95 ${f(summary.wallLatencyP95)} s, player latency p50 ${f(summary.hlsLatencyP50)} s, first frame ${summary.timeToFirstFrameMs === null ? "never" : f(summary.timeToFirstFrameMs / 1000) + " s"}, stalls ${summary.stalls}, dropped ${summary.droppedFrames}/${summary.totalFrames}, errors ${summary.errors}, origin requests/part ${summary.originRequestsPerPart} (${nPlayers} players), server CPU ${serverCpuPercent}% of a core, machine ${machineBusyPercent}% busy${g2g}${sync} -> ${join(outDir, 'report.json')}`);
for (const x of failures) console.log('  ' + x);
for (const x of knownFailures) console.log('  KNOWN-OPEN (LLHLS_PLAYER_KNOWN; issue 12): ' + x);
process.exit(failures.length ? 1 : 0);
