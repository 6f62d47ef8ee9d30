#!/usr/bin/env node
// Player test: a real publisher (ffmpeg over RTMP, real time), `llhls serve`, optionally an
// nginx edge, and real hls.js players in Debian's headless Chromium. Measures what viewers
// notice and exits non-zero when playback breaks.
//
//   node player-test/run.mjs [--duration 20] [--players 1] [--edge] [--layout muxed|separate]
//        [--part-target-ms 200] [--size 640x360] [--bframes] [--break-codecs]
//        [--llhls target/debug/llhls] [--out player-test/out/NAME] [--name NAME]
//        [--delay-ms 25]   (a delaying TCP proxy between the players and the server: 25 ms
//                           each way = 50 ms RTT; tc netem is not available on these VMs)
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : def; };
const flag = (name) => args.includes('--' + name);

const duration = Number(opt('duration', '20'));
const nPlayers = Number(opt('players', '1'));
const useEdge = flag('edge');
const layout = opt('layout', 'muxed');
const partMs = opt('part-target-ms', '200');
const size = opt('size', '640x360');
const name = opt('name', `${useEdge ? 'edge' : 'direct'}-${nPlayers}p-${layout}-${partMs}ms`);
const outDir = resolve(opt('out', join(here, 'out', name)));
const llhlsBin = resolve(opt('llhls', join(root, 'target', 'debug', 'llhls')));
mkdirSync(outDir, { recursive: true });

const delayMs = Number(opt('delay-ms', '0'));
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
async function waitFor(url, what, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try { const r = await fetch(url); if (r.ok) return; } catch {}
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what} (${url})`);
}

const httpPort = await freePort();
const rtmpPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const serverArgs = ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--demo', 'false', '--layout', layout, '--part-target-ms', partMs];
if (flag('break-codecs')) serverArgs.push('--break-codecs');
const server = run(llhlsBin, serverArgs, 'llhls.log', { RUST_LOG: process.env.RUST_LOG || 'info' });
await waitFor(`${origin}/healthz`, 'llhls serve');

// Publisher: real-time ffmpeg, H.264 + AAC, keyframe every second, wall clock in the picture.
const font = '/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf';
const vf = `drawtext=fontfile=${font}:text='%{localtime\\:%H\\\\\\:%M\\\\\\:%S}':fontsize=48:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=20`;
const ff = ['-hide_banner', '-v', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`,
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-vf', vf,
  '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30',
  '-sc_threshold', '0', '-pix_fmt', 'yuv420p', '-b:v', '1500k',
  ...(flag('bframes') ? ['-bf', '2', '-x264-params', 'bframes=2'] : []),
  '-c:a', 'aac', '-b:a', '96k', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/test`];
const publisher = run('ffmpeg', ff, 'ffmpeg.log');
const publishStarted = Date.now();
await waitFor(`${origin}/live/test/index.m3u8`, 'the first playlist');
const firstPlaylistMs = Date.now() - publishStarted;

// Optional nginx edge in front of the origin.
let playBase = origin;
let nginx = null, edgeDir = null;
if (useEdge) {
  edgeDir = mkdtempSync(join(tmpdir(), 'llhls-edge-'));
  const edgePort = await freePort();
  const conf = readFileSync(join(here, 'nginx-edge.conf'), 'utf8')
    .replaceAll('@PREFIX@', edgeDir).replaceAll('@LISTEN@', `127.0.0.1:${edgePort}`)
    .replaceAll('@ORIGIN@', `127.0.0.1:${httpPort}`)
    // As root, nginx's workers would drop to `nobody` and could not write the cache here.
    .replace('worker_processes 1;', process.getuid && process.getuid() === 0 ? 'worker_processes 1;\nuser root;' : 'worker_processes 1;');
  writeFileSync(join(edgeDir, 'nginx.conf'), conf);
  nginx = run('nginx', ['-c', join(edgeDir, 'nginx.conf'), '-p', edgeDir], 'nginx.log');
  playBase = `http://127.0.0.1:${edgePort}`;
  await waitFor(`${playBase}/live/test/index.m3u8`, 'the nginx edge');
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

// The page comes from another origin (another port), so CORS is exercised.
const hlsJs = readFileSync(join(here, 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
const pageHtml = readFileSync(join(here, 'page.html'));
const pageServer = createServer((req, res) => {
  if (req.url.startsWith('/hls.js')) { res.writeHead(200, { 'content-type': 'application/javascript' }); res.end(hlsJs); }
  else { res.writeHead(200, { 'content-type': 'text/html' }); res.end(pageHtml); }
});
const pagePort = await freePort();
await new Promise(r => pageServer.listen(pagePort, '127.0.0.1', r));

const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
// One browser context per viewer: separate HTTP caches and connection pools, like separate
// people (in one page, Chromium would collapse identical requests and share 6 connections).
const consoleErrors = [];
const src = `${playBase}/live/test/index.m3u8`;
const pages = [];
for (let i = 0; i < nPlayers; i++) {
  const ctx = await browser.newContext({ viewport: i === 0 ? { width: 1280, height: 720 } : { width: 400, height: 240 } });
  const p = await ctx.newPage();
  p.on('pageerror', e => consoleErrors.push(String(e)));
  pages.push(p);
}
const page = pages[0];
const metricValue = async (name) => {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
};
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
await Promise.all(pages.map(p => p.goto(`http://127.0.0.1:${pagePort}/?n=1&src=${encodeURIComponent(src)}`)));
await sleep(duration * 1000);
const partsDuringRun = (await metricValue('llhls_parts_published_total')) - partsBefore;
const serverCpuPercent = Number(((procCpu(server.pid) - cpu0) / ((Date.now() - t0) / 1000) * 100).toFixed(1));
const sys1 = idleCpu();
const machineBusyPercent = Number((100 * (1 - (sys1.idle - sys0.idle) / (sys1.total - sys0.total))).toFixed(1));
const stats = (await Promise.all(pages.map(p => p.evaluate(() => window.__stats())))).flat();
await page.screenshot({ path: join(outDir, 'screenshot.png') });
await browser.close();
pageServer.close();

const metrics = await (await fetch(`${origin}/metrics`)).text();
const counter = (cls) => [...metrics.matchAll(new RegExp(`llhls_requests_total\\{class="${cls}",status="\\d+"\\} (\\d+)`, 'g'))]
  .reduce((a, m) => a + Number(m[1]), 0);
const originRequests = {
  blocking_playlist: counter('blocking_playlist'), playlist: counter('playlist'),
  part: counter('part'), segment: counter('segment'), init: counter('init'),
};

publisher.kill('SIGINT');
if (nginx) nginx.kill('SIGQUIT');
server.kill('SIGTERM');
await sleep(500);
if (edgeDir) rmSync(edgeDir, { recursive: true, force: true });

const pct = (xs, p) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
const all = (k) => stats.flatMap(s => s[k]);
const wall = all('wallLatency'), hl = all('latency');
const summary = {
  name, players: nPlayers, edge: useEdge, linkDelayMsEachWay: delayMs, layout, partTargetMs: Number(partMs), durationSecs: duration,
  firstPlaylistMsAfterPublish: firstPlaylistMs,
  timeToFirstFrameMs: pct(stats.map(s => s.firstFrameMs).filter(x => x !== null), 50),
  wallLatencyP50: pct(wall, 50), wallLatencyP95: pct(wall, 95),
  hlsLatencyP50: pct(hl, 50), targetLatency: stats[0]?.targetLatency,
  stalls: stats.reduce((a, s) => a + s.stalls, 0),
  stallMs: Math.round(stats.reduce((a, s) => a + s.stallMs, 0)),
  droppedFrames: stats.reduce((a, s) => a + s.droppedFrames, 0),
  totalFrames: stats.reduce((a, s) => a + s.totalFrames, 0),
  errors: stats.reduce((a, s) => a + s.errors.length, 0),
  fatal: stats.map(s => s.fatal).filter(Boolean),
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
for (const [i, s] of stats.entries()) {
  if (s.fatal) failures.push(`player ${i}: fatal hls.js error ${s.fatal}`);
  if (s.firstFrameMs === null) failures.push(`player ${i}: never started playing`);
  const prog = s.progressAt;
  if (prog.length >= 4 && prog[prog.length - 1] - prog[0] < (prog.length / 2) * 0.5) failures.push(`player ${i}: playback did not progress (${prog[0]} -> ${prog[prog.length - 1]} s)`);
  if (s.stalls > 0) failures.push(`player ${i}: ${s.stalls} stall(s) after start (${Math.round(s.stallMs)} ms)`);
}
if (consoleErrors.length) failures.push(`page errors: ${consoleErrors.join('; ')}`);
summary.failures = failures;
writeFileSync(join(outDir, 'report.json'), JSON.stringify({ summary, players: stats }, null, 2));
const f = (x) => x === null || x === undefined ? 'n/a' : Number(x).toFixed(2);
console.log(`${failures.length ? 'FAIL' : 'PASS'} ${name}: wall latency p50 ${f(summary.wallLatencyP50)} s p95 ${f(summary.wallLatencyP95)} s, hls.js latency p50 ${f(summary.hlsLatencyP50)} s, first frame ${f(summary.timeToFirstFrameMs / 1000)} s, stalls ${summary.stalls}, dropped ${summary.droppedFrames}/${summary.totalFrames}, errors ${summary.errors}, origin requests/part ${summary.originRequestsPerPart} (${nPlayers} players), server CPU ${serverCpuPercent}% of a core, machine ${machineBusyPercent}% busy -> ${join(outDir, 'report.json')}`);
for (const x of failures) console.log('  ' + x);
process.exit(failures.length ? 1 : 0);
