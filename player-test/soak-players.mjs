// The soak's WHIP publishers and hls.js players (benches/run.py --only soak starts it beside its
// RTMP publishers and held viewers):
//
//   node player-test/soak-players.mjs --origin http://127.0.0.1:PORT --whip 2 --play live/w0,live/s0
//        --secs 600 --out FILE [--report-every 10] [--size 320x180] [--hlsjs-config JSON]
//
// --whip N publishes N streams, live/w0 ... live/w(N-1), each with GStreamer's simple-whip-client
// (H.264 from x264 + Opus, live test sources), as player-test/run.mjs's whip-gst publisher.
// Then one hls.js player (page.html, headless Chromium, a page each) per --play path
// (comma-separated, e.g. live/w0,live/s0). Every --report-every seconds it appends a JSON line to
// --out: for each player its wall latency (Date.now() minus the playhead's
// EXT-X-PROGRAM-DATE-TIME, the median of the interval's samples), hls.js's own latency
// estimate, its stalls and stall time so far (a `waiting` after the first frame), fatal error,
// and whether each publisher is still running. It stops after --secs, or on SIGTERM. Each
// stall is written to FILE's `.stalls.jsonl` with what led to it: the page's trail (hls.js's
// loads and appends, the playhead and buffer), Chromium's media log and the machine's CPU
// every 250 ms (how busy, how long runnable tasks waited, what Chromium got).
//
// The players run with the config of the player page the server ships at `/`
// (src/player/index.html: lowLatencyMode, maxLiveSyncPlaybackRate 1.25), so they catch up as a
// viewer of that page does. Without it hls.js never plays faster than 1x, and headless Chromium's
// playhead advanced at 0.99x wall clock under the full soak's load (its audio clock, not the
// stream: the server's playlists stayed 1 s from live), so latency grew 2.4 -> 15 s in 19
// minutes. --hlsjs-config JSON is merged over that config (e.g. '{"liveSyncDuration":1}': a
// target latency other than PART-HOLD-BACK). Each report also gives `playRate`: the playhead's advance over the interval divided
// by the wall time, so a slow clock shows in the figures instead of hiding in latency.
//
// run.py starts this script at a higher CPU priority (nice -5) than the load generators, where
// the machine allows it, and raises the server and its RTMP publisher to it; Chromium's threads
// are raised to it (Chromium resets its renderers' priority), the WHIP publishers keep it
// (--whip-default-priority puts them back to the default, as before 12-05). Where the kernel's
// autogroups are on (/proc/sys/kernel/sched_autogroup_enabled), that only orders threads inside
// a session: Chromium runs in a session of its own, which the scheduler shares the CPU with the
// session of the server and the load generators half and half. Raising Chromium's whole session
// (/proc/PID/autogroup, tried at 4cb45fa) took that CPU from the server instead: its viewers'
// lag p99 rose 117-149 -> 167-220 ms, playlist updates reached the players 130-380 ms late, and
// the players stalled 3 times in 25 minutes (1 in 30 without it), so it is left as it is
// (benches/README.md, "Reliability"). The players stand
// for viewers on their own devices. (The 720p player's 3 stalls in 60 minutes came with and
// without it: benches/README.md, "Reliability".)
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { here, opt, flag, sleep, launchChromium, servePlayerPages, watchMachine } from './common.mjs';

const origin = opt('origin');
if (!origin) throw new Error('--origin http://HOST:PORT is required');
const whipCount = Number(opt('whip', '2'));
const paths = (opt('play', '') || '').split(',').filter(Boolean);
const secs = Number(opt('secs', '120'));
const every = Number(opt('report-every', '10'));
const out = opt('out', join(tmpdir(), 'soak-players.jsonl'));
const size = opt('size', '320x180');
// The WHIP publishers at the default priority rather than this script's (run.py's
// `--soak-priority players`: only the players raised, as the soaks before 12-05 ran).
const whipDefaultPriority = flag('whip-default-priority');
writeFileSync(out, '');

const children = [];
let stopping = false;
const stopAll = () => { stopping = true; for (const c of children) { try { c.kill('SIGTERM'); } catch {} } };
process.on('SIGTERM', () => { stopAll(); process.exit(0); });
process.on('SIGINT', () => { stopAll(); process.exit(0); });

// Debian 12's simple-whip-client needs the project's preload shim (see whip-client-shim.c).
const shimDir = mkdtempSync(join(tmpdir(), 'llhls-whipshim-'));
const shim = join(shimDir, 'shim.so');
const cc = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', shim, join(here, 'whip-client-shim.c'), '-ldl']);
if (cc.status !== 0) throw new Error(`building the whip-client shim failed: ${cc.stderr}`);
const [w, h] = size.split('x');
// Debian's simple-whip-client sometimes aborts as it starts ("munmap_chunk(): invalid pointer",
// about one start in three with two starting together): a publisher that exits before the
// streams are up is started again (at most 3 times, counted in the report); one that exits
// later stays down and the soak reports it.
let startingUp = true;
const publishers = [];
const restarts = Array(whipCount).fill(0);
function publish(i) {
  const video = `videotestsrc is-live=true pattern=ball ! video/x-raw,width=${w},height=${h},framerate=30/1 ! videoconvert ! queue ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=400 key-int-max=60 ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=96 ssrc=2 config-interval=-1 ! queue ! application/x-rtp,media=video,encoding-name=H264,payload=96`;
  const audio = 'audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111';
  const log = [];
  // The publishers stand for encoders on other machines: at this script's priority, like the
  // server (run.py), or back at the default with --whip-default-priority.
  const prio = whipDefaultPriority ? getPriority() : 0;
  const argv = ['whip-client', '-u', `${origin}/whip/live/w${i}`, '-n', '-l', '3', '-V', video, '-A', audio];
  const c = spawn(prio < 0 ? 'nice' : argv[0], prio < 0 ? ['-n', String(-prio), ...argv] : argv.slice(1),
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LD_PRELOAD: shim } });
  c.stdout.on('data', d => log.push(d)); c.stderr.on('data', d => log.push(d));
  c.exited = null;
  c.on('exit', (code, sig) => {
    c.exited = `${code ?? sig}`;
    writeFileSync(`${out}.whip${i}.log`, Buffer.concat(log));
    if (stopping) return;
    console.error(`soak-players: WHIP publisher w${i} exited (${c.exited})`);
    if (startingUp && restarts[i] < 3) {
      restarts[i]++;
      setTimeout(() => { if (!stopping) publish(i); }, 1000);
    }
  });
  children.push(c);
  publishers[i] = c;
}
for (let i = 0; i < whipCount; i++) {
  publish(i);
  await sleep(2000);
}

async function waitFor(url, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try { const r = await fetch(url); if (r.ok && (await r.text()).includes('#EXT')) return true; } catch {}
    await sleep(250);
  }
  return false;
}
for (const p of [...new Set([...Array.from({ length: whipCount }, (_, i) => `live/w${i}`), ...paths])]) {
  if (!await waitFor(`${origin}/${p}/index.m3u8`, 30000)) {
    stopAll();
    throw new Error(`no playlist for ${p} within 30 s`);
  }
}

const { port, server } = await servePlayerPages();
const browser = await launchChromium();
// Chromium sets its child processes' priorities itself (renderers back at 0, or 5 in the
// background, whatever it was started at): every 2 s, every thread of Chromium's processes
// below this script is raised to this script's priority, when that is above the default. The
// same walk of /proc keeps the list of Chromium's processes that the machine samples read
// (common.mjs, watchMachine: CPU busy, CPU pressure and Chromium's share every 250 ms, written
// beside each stall's trail like the media log).
const playerPriority = getPriority();
const machine = watchMachine({
  onChromium: (found) => {
    if (playerPriority >= 0) return;
    for (const { tids } of found) {
      for (const t of tids) {
        try { if (getPriority(t) > playerPriority) setPriority(t, playerPriority); } catch {}
      }
    }
  },
});
const pages = [];
// Chromium's own media log for each player (DevTools `Media` domain: its events, messages and
// property changes, e.g. the buffering state and why it fell to HAVE_NOTHING), the last 60 s
// kept, and written beside each stall's trail.
const mediaLogs = [];
for (const p of paths) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const ring = [];
  mediaLogs.push(ring);
  try {
    const cdp = await context.newCDPSession(page);
    const keep = (kind, items) => {
      const at = Date.now();
      for (const x of items || []) ring.push({ at, kind, ...x });
      while (ring.length && (ring[0].at < at - 60000 || ring.length > 5000)) ring.shift();
    };
    cdp.on('Media.playerEventsAdded', e => keep('event', e.events));
    cdp.on('Media.playerMessagesLogged', e => keep('message', e.messages));
    cdp.on('Media.playerPropertiesChanged', e => keep('property', e.properties));
    cdp.on('Media.playerErrorsRaised', e => keep('error', e.errors));
    await cdp.send('Media.enable');
  } catch (e) {
    console.error(`soak-players: no Chromium media log for ${p}:`, String(e));
  }
  page.on('pageerror', e => console.error(`soak-players: page error (${p}):`, String(e)));
  const hlsjs = encodeURIComponent(JSON.stringify({ maxLiveSyncPlaybackRate: 1.25, ...JSON.parse(opt('hlsjs-config', '{}')) }));
  await page.goto(`http://127.0.0.1:${port}/?n=1&player=hlsjs&trail=1&hlsjs=${hlsjs}&src=${encodeURIComponent(`${origin}/${p}/index.m3u8`)}`);
  pages.push(page);
}
startingUp = false;
const started = Date.now();
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : null; };
const seen = paths.map(() => ({ wall: 0, lat: 0, t: null, at: 0 }));
const written = paths.map(() => 0);
while (Date.now() - started < secs * 1000 && !stopping) {
  await sleep(every * 1000);
  const players = [], stats = [];
  for (let i = 0; i < pages.length; i++) {
    let s;
    try { [s] = await pages[i].evaluate(() => window.__stats()); } catch (e) { players.push({ path: paths[i], error: String(e) }); continue; }
    stats[i] = s;
    const wall = s.wallLatency.slice(seen[i].wall), lat = s.latency.slice(seen[i].lat);
    const now = Date.now();
    const playRate = seen[i].t === null ? null : Number(((s.currentTime - seen[i].t) / ((now - seen[i].at) / 1000)).toFixed(3));
    seen[i] = { wall: s.wallLatency.length, lat: s.latency.length, t: s.currentTime, at: now };
    players.push({
      path: paths[i], playing: s.firstFrameMs !== null, wallLatencyS: median(wall), latencyS: median(lat),
      samples: wall.length, stalls: s.stalls, stallMs: Math.round(s.stallMs), fatal: s.fatal,
      stallsAfter30s: s.stallTimes.filter(t => t > s.joinedAt + 30000).length,
      errors: s.errors.length, currentTime: Number(s.currentTime.toFixed(2)), playRate,
      // hls.js's non-fatal errors by kind (it retries them), e.g. {"bufferStalledError": 3}.
      errorKinds: s.errors.reduce((a, e) => { a[e.details] = (a[e.details] || 0) + 1; return a; }, {}),
    });
  }
  // What led to each stall (page.html's trail: hls.js's loads and appends, the playhead and
  // each buffer's ranges over the 30 s before it and 5 s after), once complete, to a file beside.
  for (let i = 0; i < pages.length; i++) {
    const tr = stats[i]?.trails || [];
    while (written[i] < tr.length && tr[written[i]].complete) {
      const at = stats[i].stallTimes[written[i]] ?? 0;
      const media = mediaLogs[i].filter(x => x.at >= at - 30000 && x.at <= at + 5000).map(x => ({ ...x, t: x.at - at }));
      appendFileSync(out.replace(/\.jsonl$/, '') + '.stalls.jsonl', JSON.stringify({ path: paths[i], stallInfo: stats[i].stallInfo[written[i]] ?? null, ...tr[written[i]], media, machine: machine.around(at) }) + '\n');
      written[i]++;
    }
  }
  appendFileSync(out, JSON.stringify({ t_s: Math.round((Date.now() - started) / 100) / 10, players,
    whip: publishers.map(c => c.exited === null), whipRestarts: restarts,
    // Of the 250 ms samples so far, how many found the machine's CPUs at least 95% busy.
    machineBusy95: machine.busy95() }) + '\n');
}
stopping = true;
for (const c of publishers) c.kill('SIGTERM');
await browser.close();
server.close();
process.exit(0);
