// What the player-test scripts share: their folders, command-line options, the llhls binary
// to test, free ports, sleeping, Chromium and the test player page.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

/** player-test/ and the repository root. */
export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..');

// Each test run's servers keep their data (the live streams' positions for a restart, DVR,
// recordings) in a folder of their own, unless the run names one: two runs in a row must not
// continue each other's streams, as one server restarted would (README "Restarts").
if (!process.env.LLHLS_DATA_DIR) {
  const dir = mkdtempSync(join(tmpdir(), 'llhls-player-test-data-'));
  process.env.LLHLS_DATA_DIR = dir;
  process.on('exit', () => { try { rmSync(dir, { recursive: true, force: true }); } catch {} });
}

const args = process.argv.slice(2);
/** The value after `--NAME` on the command line, or `def`. */
export const opt = (name, def) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : def; };
/** Whether `--NAME` is on the command line. */
export const flag = (name) => args.includes('--' + name);
/** The llhls binary under test (`--llhls PATH`, default the debug build). */
export const llhlsBin = resolve(opt('llhls', join(root, 'target', 'debug', 'llhls')));

/** player-test/out/NAME, created. */
export function outDirNamed(name) {
  const dir = join(here, 'out', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () => new Promise((res, rej) => {
  const s = net.createServer(); s.unref(); s.on('error', rej);
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});

export const sleep = (ms) => new Promise(r => setTimeout(r, ms));

/** Polls `url` every 100 ms until it answers 2xx; throws, naming `what`, after `ms`. */
export async function waitOk(url, what, ms = 30000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { const r = await fetch(url); if (r.ok) return; } catch {}
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} (${url})`);
}

/** Debian's headless Chromium (or $CHROMIUM) with the flags every test uses, plus `extra`. */
export async function launchChromium(extra = []) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required', ...extra] });
}

/**
 * Chromium's processes below this script (the browser and its children, by the parent links in
 * /proc) with their threads: `[{ pid, tids }]`.
 */
function chromiumProcesses() {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push({ pid: Number(d), comm });
    } catch {}
  }
  const found = [];
  const stack = [process.pid];
  while (stack.length) {
    for (const k of children.get(stack.pop()) || []) {
      if (!/chrom/i.test(k.comm)) continue;
      stack.push(k.pid);
      let tids = [];
      try { tids = readdirSync(`/proc/${k.pid}/task`).map(Number); } catch {}
      found.push({ pid: k.pid, tids });
    }
  }
  return found;
}

/**
 * The machine every 250 ms, the last 60 s kept, so a player's stall can be told apart as the
 * player's CPU starvation or the stream's: how busy the CPUs were (/proc/stat, `busyPct`), how
 * long runnable tasks waited for one (/proc/pressure/cpu, "some": `psiSomeMsPerS`, ms per
 * second) and how much CPU Chromium's processes got (`chromiumPctOfCore`, % of one core).
 * Chromium's processes are found again every 2 s (`onChromium(found)` is called with each
 * walk). `around(at)` gives the samples from 10 s before `at` (epoch ms) to 3 s after, with
 * `t` relative to it; `busy95()` the share of all samples with the CPUs at least 95% busy.
 */
export function watchMachine({ onChromium = null } = {}) {
  const hz = 100;
  const ring = [];
  const totals = { samples: 0, busy95: 0 };
  let pids = [];
  let last = null;
  const walk = () => {
    const found = chromiumProcesses();
    pids = found.map(x => x.pid);
    if (onChromium) onChromium(found);
  };
  const sample = () => {
    try {
      const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const idle = cpu[3] + (cpu[4] || 0), total = cpu.reduce((a, b) => a + b, 0);
      let psi = null;
      try { psi = Number(/some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))[1]); } catch {}
      let chrome = 0;
      const pidsKey = pids.join(',');
      for (const pid of pids) {
        try {
          const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
          const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
          chrome += Number(x[11]) + Number(x[12]);
        } catch {}
      }
      const at = Date.now();
      if (last) {
        const dt = (at - last.at) / 1000, dTotal = total - last.total;
        const busy = dTotal > 0 ? 100 * (1 - (idle - last.idle) / dTotal) : null;
        ring.push({ at, busyPct: busy === null ? null : Math.round(busy),
          psiSomeMsPerS: psi === null || last.psi === null ? null : Math.round((psi - last.psi) / 1000 / dt),
          // Only over the same processes (one that started or ended in between would count its
          // whole life or go negative).
          chromiumPctOfCore: pidsKey === last.pidsKey ? Math.round((chrome - last.chrome) / hz / dt * 100) : null });
        totals.samples++;
        if (busy !== null && busy >= 95) totals.busy95++;
        while (ring.length && ring[0].at < at - 60000) ring.shift();
      }
      last = { at, idle, total, psi, chrome, pidsKey };
    } catch {}
  };
  walk();
  setInterval(walk, 2000).unref();
  setInterval(sample, 250).unref();
  return {
    around: (at, before = 10000, after = 3000) => ring.filter(x => x.at >= at - before && x.at <= at + after).map(x => ({ ...x, t: x.at - at })),
    busy95: () => totals.samples ? Number((totals.busy95 / totals.samples).toFixed(3)) : null,
  };
}

/**
 * Checks of an open acceptance criterion named in LLHLS_PLAYER_KNOWN (comma-separated) are
 * reported as KNOWN-OPEN instead of failing the run; each script lists the names it knows.
 */
/// One interface, window.__p, over the player in `page`: hls.js in the page the server ships
/// at `/` (its globals `hls` and `video`), or Shaka in page.html (`players[0]`). height() is the
/// rendition playing, loading() the one being loaded, onSwitch(f) calls f(height) on each switch.
export async function exposePlayer(page, shaka) {
  await page.evaluate((shaka) => {
    const p = shaka ? players[0] : null;
    const active = () => p.shaka.getVariantTracks().find(t => t.active);
    window.__p = shaka ? {
      video: p.video,
      height: () => active()?.height,
      loading: () => active()?.height,
      heights: () => [...new Set(p.shaka.getVariantTracks().map(t => t.height))],
      latency: () => p.shaka.getStats().liveLatency,
      estimate: () => p.shaka.getStats().estimatedBandwidth,
      fatal: () => p.fatal || '',
      onSwitch: (f) => {
        p.shaka.addEventListener('adaptation', e => f(e.newTrack?.height ?? active()?.height));
        p.shaka.addEventListener('variantchanged', () => f(active()?.height));
      },
    } : {
      video,
      height: () => hls.levels[hls.currentLevel]?.height,
      loading: () => hls.levels[hls.loadLevel]?.height,
      heights: () => hls.levels.map(l => l.height),
      latency: () => hls.latency,
      estimate: () => hls.bandwidthEstimate,
      fatal: () => typeof error === 'string' ? error : '',
      onSwitch: (f) => hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => f(hls.levels[d.level].height)),
    };
  }, shaka);
}

export const knownOpen = new Set((process.env.LLHLS_PLAYER_KNOWN || '').split(',').map(t => t.trim()).filter(Boolean));

/**
 * The test player page (page.html: hls.js, Shaka or Chromium's own player, `?player=`),
 * publish.html, hls.js and Shaka (its debug build with `shakaDebug`), served on a free port of
 * 127.0.0.1: another origin than the server's, so CORS is exercised. Resolves to
 * `{ port, server }`.
 */
export async function servePlayerPages({ shakaDebug = false } = {}) {
  // LLHLS_HLSJS_FILE: another hls.js build (an instrumented copy, while investigating a player).
  const hlsJs = readFileSync(process.env.LLHLS_HLSJS_FILE || join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
  const shakaJs = readFileSync(join(here, 'node_modules', 'shaka-player', 'dist',
    shakaDebug ? 'shaka-player.compiled.debug.js' : 'shaka-player.compiled.js'));
  const pageHtml = readFileSync(join(here, 'page.html'));
  const publishHtml = readFileSync(join(here, 'publish.html'));
  const server = createServer((req, res) => {
    if (req.url.startsWith('/hls.js')) { res.writeHead(200, { 'content-type': 'application/javascript' }); res.end(hlsJs); }
    else if (req.url.startsWith('/shaka.js')) { res.writeHead(200, { 'content-type': 'application/javascript' }); res.end(shakaJs); }
    else if (req.url.startsWith('/publish')) { res.writeHead(200, { 'content-type': 'text/html' }); res.end(publishHtml); }
    else { res.writeHead(200, { 'content-type': 'text/html' }); res.end(pageHtml); }
  });
  const port = await freePort();
  await new Promise(r => server.listen(port, '127.0.0.1', r));
  return { port, server };
}

// --player-debug: what the player asks of Media Source Extensions, in the page's console. An
// abort() or a timestampOffset change makes the SourceBuffer drop frames until the next
// keyframe, a hole in the buffer; each is logged with the buffered ranges around it.
export async function traceMediaSource(context) {
  await context.addInitScript(() => {
    const SB = SourceBuffer.prototype, ranges = (sb) => { const r = []; try { for (let i = 0; i < sb.buffered.length; i++) r.push(`${sb.buffered.start(i).toFixed(3)}-${sb.buffered.end(i).toFixed(3)}`); } catch {} return r.join(' '); };
    const kind = (sb) => sb.__kind || '?';
    const add = MediaSource.prototype.addSourceBuffer;
    MediaSource.prototype.addSourceBuffer = function (type) { const sb = add.call(this, type); sb.__kind = type.split('/')[0]; sb.addEventListener('updateend', () => { if (sb.__append) console.log(`MSE ${kind(sb)} appended ${sb.__append} -> [${ranges(sb)}]`); sb.__append = null; }); return sb; };
    const abort = SB.abort;
    SB.abort = function () { console.log(`MSE ${kind(this)} abort() buffered [${ranges(this)}]`); return abort.call(this); };
    const tso = Object.getOwnPropertyDescriptor(SB, 'timestampOffset');
    Object.defineProperty(SB, 'timestampOffset', { configurable: true, get() { return tso.get.call(this); },
      set(v) { console.log(`MSE ${kind(this)} timestampOffset ${tso.get.call(this)} -> ${v}`); tso.set.call(this, v); } });
    const remove = SB.remove;
    SB.remove = function (a, b) { console.log(`MSE ${kind(this)} remove(${a.toFixed(3)}, ${b.toFixed(3)}) buffered [${ranges(this)}]`); return remove.call(this, a, b); };
    const append = SB.appendBuffer;
    SB.appendBuffer = function (d) { this.__append = `${d.byteLength} bytes`; return append.call(this, d); };
  });
}

// The playlist's object URIs with whether they are listed as GAP (EXT-X-GAP before a segment's
// URI, GAP=YES on a part): a continued stream re-lists the old run's last MSN and the skipped
// ones as GAP, URIs players never load.
export const listedUris = (pl) => {
  const out = [];
  let gap = false;
  for (const l of pl.split('\n')) {
    if (l.startsWith('#EXT-X-PRELOAD-HINT') || l.startsWith('#EXT-X-RENDITION')) continue;
    if (l === '#EXT-X-GAP') gap = true;
    else if (l.startsWith('#')) out.push(...[...l.matchAll(/URI="([^"]+)"/g)].map(m => ({ u: m[1], gap: /GAP=YES/.test(l) })));
    else if (l) { out.push({ u: l, gap }); gap = false; }
  }
  return out;
};

/**
 * The ABR tests' stream (abr-test, withdraw-test): `llhls serve --ladder 360p,240p` on free
 * ports and ffmpeg publishing 640x480 (keyframe every second) over RTMP to live/abr for `secs`.
 * Returns at once with `origin`, `src` (the multivariant playlist), `server`, `serverLog()`
 * and `stop()`; `await live()` starts the publisher once the server answers and waits for the
 * multivariant playlist (then in `multivariant`), returning null, or what went wrong.
 */
export async function ladderStream(secs) {
  const { spawn } = await import('node:child_process');
  const httpPort = await freePort(), rtmpPort = await freePort();
  const origin = `http://127.0.0.1:${httpPort}`;
  const log = [];
  const server = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
    '--whip-udp', 'off', '--demo', 'false', '--ladder', '360p,240p'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
  server.stdout.on('data', d => log.push(d)); server.stderr.on('data', d => log.push(d));
  const s = { origin, src: `${origin}/live/abr/index.m3u8`, server, ffmpeg: null, multivariant: '',
    serverLog: () => Buffer.concat(log).toString() };
  s.stop = () => { if (s.ffmpeg) s.ffmpeg.kill('SIGKILL'); server.kill('SIGKILL'); };
  s.live = async () => {
    for (let i = 0; ; i++) {
      try { if ((await fetch(`${origin}/healthz`)).ok) break; } catch {}
      if (i > 300) return 'the server did not start';
      await sleep(100);
    }
    s.ffmpeg = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=30',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(secs), '-c:v', 'libx264', '-preset', 'veryfast',
      '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-b:v', '1500k', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/abr`], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      try { const r = await fetch(s.src); if (r.ok) { s.multivariant = await r.text(); return null; } } catch {}
      if (i > 300) return 'the stream never went live';
      await sleep(100);
    }
  };
  return s;
}
