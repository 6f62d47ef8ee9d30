#!/usr/bin/env node
// DVR in headless Chromium: `llhls serve --dvr-window-secs 120` with ffmpeg publishing over
// RTMP, watched with the built-in player page (hls.js 1.7.4; the default) or with Shaka Player
// 5.2 in low-latency mode (`--player shaka`, a bare page). It takes about 2 minutes (the window
// has to hold more than 60 s of media first), so it is not part of scripts/test.sh.
//   1. Once the stream is 75 s old, the player plays it at the live edge; its seekable range
//      spans the window (hls.js: and the page shows the DVR line).
//   2. Seeking 60 s back plays from there (PROGRAM-DATE-TIME about 60 s behind the wall
//      clock), from segments the origin serves from disk.
//   3. Back to live (hls.js: the page's "Back to live" button; Shaka: `goToLive()`) returns to
//      the live edge: the player's latency falls back below 4 s.
// No fatal error and no page error throughout. Screenshots go to player-test/out/dvr[-shaka]/.
//   node player-test/dvr-test.mjs [--player hlsjs|shaka] [--llhls target/debug/llhls]
import { root, here, llhlsBin, outDirNamed, freePort, sleep, opt } from './common.mjs';
import { spawn } from 'node:child_process';
import { writeFileSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const playerKind = opt('player', 'hlsjs');
if (!['hlsjs', 'shaka'].includes(playerKind)) throw new Error(`unknown --player ${playerKind}`);
const shaka = playerKind === 'shaka';
const outDir = outDirNamed(shaka ? 'dvr-shaka' : 'dvr');
const dataDir = join(outDir, 'data');
rmSync(dataDir, { recursive: true, force: true });
const startedAt = Date.now();

const httpPort = await freePort(), rtmpPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const log = [];
const server = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', 'off', '--demo', 'false', '--dvr-window-secs', '120', '--data-dir', dataDir],
  { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
server.stdout.on('data', d => log.push(d)); server.stderr.on('data', d => log.push(d));
let ffmpeg = null;
const failures = [], notes = [];
let browser = null;
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  if (ffmpeg) ffmpeg.kill('SIGKILL');
  server.kill('SIGKILL');
  writeFileSync(join(outDir, 'llhls.log'), Buffer.concat(log));
  notes.push(`run took ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  console.log(`${failures.length ? 'FAIL' : 'PASS'} DVR in ${shaka ? 'Shaka' : 'hls.js'}: ${failures.length ? failures.join('; ') : notes.join('; ')} -> ${outDir}`);
  if (failures.length && notes.length) console.log('notes: ' + notes.join('; '));
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 200 s'); finish(1); }, 200000).unref();

for (let i = 0; ; i++) {
  try { if ((await fetch(`${origin}/healthz`)).ok) break; } catch {}
  if (i > 300) { failures.push('the server did not start'); await finish(1); }
  await sleep(100);
}
ffmpeg = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '170', '-c:v', 'libx264', '-preset', 'veryfast',
  '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
  '-c:a', 'aac', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/dvr`], { stdio: 'ignore' });

// Wait until the window holds 75 s.
const listed = async () => {
  try {
    const r = await fetch(`${origin}/live/dvr/media.m3u8`);
    if (!r.ok) return 0;
    const text = await r.text();
    return [...text.matchAll(/#EXTINF:([\d.]+),/g)].reduce((a, m) => a + Number(m[1]), 0);
  } catch { return 0; }
};
for (let i = 0; (await listed()) < 75; i++) {
  if (i > 1200) { failures.push('the window never held 75 s'); await finish(1); }
  await sleep(100);
}
notes.push(`window ${(await listed()).toFixed(0)} s when the page opened`);

const { chromium } = await import('playwright-core');
browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'] });
const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
const page = await context.newPage();
const pageErrors = [], requests = [];
page.on('pageerror', e => pageErrors.push(String(e)));
page.on('request', r => requests.push({ t: Date.now(), url: r.url() }));
if (shaka) {
  // A bare page on the origin, with Shaka Player in low-latency mode (its defaults otherwise).
  await page.goto(`${origin}/healthz`);
  await page.setContent('<video id="video" muted autoplay playsinline style="width:640px"></video>');
  await page.addScriptTag({ content: readFileSync(join(here, 'node_modules', 'shaka-player', 'dist', 'shaka-player.compiled.js'), 'utf8') });
  await page.evaluate(async (src) => {
    window.error = '';
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    window.player = player;
    player.addEventListener('error', (e) => { if (e.detail?.severity === 2) window.error = `code ${e.detail.code}`; });
    await player.attach(document.getElementById('video'));
    player.configure({ streaming: { lowLatencyMode: true } });
    await player.load(src);
  }, `${origin}/live/dvr/index.m3u8`);
} else {
  await page.goto(`${origin}/#/live/dvr/index.m3u8`);
}
const state = () => page.evaluate((shaka) => {
  const video = document.getElementById('video');
  const range = shaka ? window.player.seekRange() : null;
  const date = shaka ? window.player.getPlayheadTimeAsDate() : (hls && hls.playingDate);
  return {
    time: video.currentTime,
    seekable: shaka ? [range.start, range.end]
      : video.seekable.length ? [video.seekable.start(0), video.seekable.end(video.seekable.length - 1)] : null,
    behindWall: date ? (Date.now() - date.getTime()) / 1000 : null,
    latency: shaka ? window.player.getStats().liveLatency : hls ? hls.latency : null,
    fatal: typeof error === 'string' ? error : '',
    stats: shaka ? '' : document.querySelector('#stats').textContent,
    dvrShown: shaka ? null : !document.querySelector('#dvr').hidden,
    dvrNote: shaka ? '' : document.querySelector('#dvrnote').textContent,
  };
}, shaka);
let s = await state();
for (let i = 0; i < 150 && s.time < 2; i++) { await sleep(200); s = await state(); }
if (s.time < 2) { failures.push(`not playing: ${JSON.stringify(s)}`); await finish(1); }
await sleep(3000);
s = await state();
await page.screenshot({ path: join(outDir, '1-live.png') });

// 1. At the live edge, with the window seekable.
const span = s.seekable ? s.seekable[1] - s.seekable[0] : 0;
if (span < 70) failures.push(`seekable range ${span.toFixed(1)} s, the window holds more than 75 s`);
if (!(s.latency < 4)) failures.push(`not at the live edge at start: latency ${s.latency}`);
if (!shaka && !s.dvrShown) failures.push('the page does not show the DVR line');
if (!shaka && !/seekable \d+\.\d\d s/.test(s.stats)) failures.push(`the stats do not show the seekable range: "${s.stats}"`);
notes.push(`seekable ${span.toFixed(1)} s, live latency ${s.latency.toFixed(2)} s`);

// 2. Sixty seconds back.
await page.evaluate(() => { window.__waiting = 0; document.getElementById('video').addEventListener('waiting', () => { window.__waiting++; }); });
const seekAt = Date.now();
await page.evaluate((end) => { document.getElementById('video').currentTime = end - 60; }, s.seekable[1]);
await sleep(1000);
const t0 = (await state()).time;
await sleep(6000);
s = await state();
await page.screenshot({ path: join(outDir, '2-back-60s.png') });
if (!(s.time > t0 + 4)) failures.push(`after the seek the video did not play: ${t0.toFixed(1)} -> ${s.time.toFixed(1)}`);
if (!(s.behindWall > 55 && s.behindWall < 75)) failures.push(`after seeking 60 s back, PROGRAM-DATE-TIME is ${s.behindWall} s behind the wall clock`);
if (!shaka && !/behind live/.test(s.dvrNote)) failures.push(`the page does not say how far behind live: "${s.dvrNote}"`);
const spilled = readdirSync(dataDir, { recursive: true }).filter(f => String(f).endsWith('.m4s') && !String(f).includes('.tmp'));
const onDisk = new Set(spilled.map(f => String(f).split('/').pop()));
const old = requests.filter(r => r.t >= seekAt && /\/media\/\d+\.m4s$/.test(r.url)).map(r => r.url.split('/').pop());
if (!old.some(u => onDisk.has(u))) failures.push(`no segment fetched after the seek is one the origin keeps on disk (${old.join(' ')})`);
notes.push(`60 s back: playing ${s.behindWall.toFixed(1)} s behind the wall clock, ${old.filter(u => onDisk.has(u)).length} segments from disk`);

// 3. Back to live.
if (shaka) await page.evaluate(() => window.player.goToLive());
else await page.click('#golive');
let back = null;
for (let i = 0; i < 40; i++) { await sleep(500); s = await state(); if (s.latency < 4) { back = (i + 1) * 0.5; break; } }
await sleep(3000);
s = await state();
await page.screenshot({ path: join(outDir, '3-back-to-live.png') });
if (back === null || !(s.latency < 4)) failures.push(`back to live left the latency at ${s.latency} s`);
else notes.push(`back to live in ${back} s, latency ${s.latency.toFixed(2)} s`);
if (s.fatal) failures.push(`fatal error: ${s.fatal}`);
if (pageErrors.length) failures.push(`page errors: ${pageErrors.join(' | ')}`);
notes.push(`${await page.evaluate(() => window.__waiting)} stalls ("waiting") after the seek`);
await finish();
