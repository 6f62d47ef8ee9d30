#!/usr/bin/env node
// ABR ladder with the built-in player page (hls.js 1.7.4 in headless Chromium): `llhls serve
// --ladder 360p,240p` with ffmpeg publishing 640x480 over RTMP.
//   1. The page's quality picker lists `auto` and the three renditions; the stats line names
//      the one playing.
//   2. Picking 240p plays 240p (its parts are fetched; the stats say "240p ... (picked)"), and
//      the first request for 240p.m3u8 after the pick is a blocking request (_HLS_msn), built
//      from the rendition report of the playlist it left.
//   3. Back on auto, the bandwidth is throttled to 1.2 Mbit/s (Chromium's DevTools protocol,
//      Network.emulateNetworkConditions): hls.js switches down; unthrottled, it switches back
//      up. No fatal error and no stall throughout.
// Screenshots go to player-test/out/abr/.
//   node player-test/abr-test.mjs [--llhls target/debug/llhls]
import { root, llhlsBin, outDirNamed, freePort, sleep } from './common.mjs';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const outDir = outDirNamed('abr');

const httpPort = await freePort(), rtmpPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const log = [];
const server = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', 'off', '--demo', 'false', '--ladder', '360p,240p'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
server.stdout.on('data', d => log.push(d)); server.stderr.on('data', d => log.push(d));
let ffmpeg = null;
const failures = [], notes = [];
let browser = null;
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  if (ffmpeg) ffmpeg.kill('SIGKILL');
  server.kill('SIGKILL');
  writeFileSync(join(outDir, 'llhls.log'), Buffer.concat(log));
  console.log(`${failures.length ? 'FAIL' : 'PASS'} ABR ladder in hls.js: ${failures.length ? failures.join('; ') : notes.join('; ')} -> ${outDir}`);
  if (failures.length && notes.length) console.log('notes: ' + notes.join('; '));
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 150 s'); finish(1); }, 150000).unref();

for (let i = 0; ; i++) {
  try { if ((await fetch(`${origin}/healthz`)).ok) break; } catch {}
  if (i > 300) { failures.push('the server did not start'); await finish(1); }
  await sleep(100);
}
ffmpeg = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=30',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '110', '-c:v', 'libx264', '-preset', 'veryfast',
  '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-b:v', '1500k', '-pix_fmt', 'yuv420p',
  '-c:a', 'aac', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/abr`], { stdio: 'ignore' });
for (let i = 0; ; i++) {
  try { if ((await fetch(`${origin}/live/abr/index.m3u8`)).ok) break; } catch {}
  if (i > 300) { failures.push('the stream never went live'); await finish(1); }
  await sleep(100);
}

const { chromium } = await import('playwright-core');
browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'] });
const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
const page = await context.newPage();
const pageErrors = [], requests = [];
page.on('pageerror', e => pageErrors.push(String(e)));
page.on('request', r => requests.push({ t: Date.now(), url: r.url() }));
await page.goto(`${origin}/#/live/abr/index.m3u8`);
const state = () => page.evaluate(() => ({
  t: Date.now(),
  time: video.currentTime,
  level: hls ? hls.currentLevel : -2,
  auto: hls ? hls.autoLevelEnabled : null,
  heights: hls ? hls.levels.map(l => l.height) : [],
  fatal: typeof error === 'string' ? error : '',
  stats: document.querySelector('#stats').textContent,
  options: [...document.querySelectorAll('#quality option')].map(o => o.textContent),
  pickerShown: !document.querySelector('#qualitylabel').hidden,
}));
let s = await state();
for (let i = 0; i < 150 && s.time < 2; i++) { await sleep(200); s = await state(); }
if (s.time < 2) { failures.push(`not playing: ${JSON.stringify(s)}`); await finish(1); }
for (let i = 0; i < 50 && !/rendition \d+p/.test(s.stats); i++) { await sleep(200); s = await state(); }
await page.evaluate(() => {
  window.__waiting = [];
  video.addEventListener('waiting', () => { window.__waiting.push(Date.now()); });
  window.__switches = [];
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => window.__switches.push([Date.now(), hls.levels[d.level].height]));
});
await page.screenshot({ path: join(outDir, '1-auto.png') });

// 1. The picker and the stats line.
if (!s.pickerShown) failures.push('the quality picker is hidden');
if (s.options.length !== 4 || s.options[0] !== 'auto') failures.push(`picker options: ${JSON.stringify(s.options)}`);
for (const h of [480, 360, 240]) if (!s.heights.includes(h)) failures.push(`no ${h}-line level: ${JSON.stringify(s.heights)}`);
if (!/rendition \d+p \d+ kbit\/s \(auto\)/.test(s.stats)) failures.push(`stats do not name the rendition: "${s.stats}"`);

// hls.js's latency, averaged over 3 s, on the rendition playing.
const latency = async () => {
  let sum = 0;
  for (let i = 0; i < 6; i++) { sum += await page.evaluate(() => hls.latency); await sleep(500); }
  return (sum / 6).toFixed(2);
};
const levelNow = async () => page.evaluate(() => hls.levels[hls.currentLevel]?.height);
notes.push(`latency ${await latency()} s on ${await levelNow()}p (auto)`);

// 2. Pick 240p.
const i240 = s.heights.indexOf(240);
const pickedAt = Date.now();
await page.selectOption('#quality', String(i240));
for (let i = 0; i < 75; i++) { await sleep(200); s = await state(); if (s.level === i240 && /rendition 240p .*\(picked\)/.test(s.stats)) break; }
await sleep(2000);
s = await state();
await page.screenshot({ path: join(outDir, '2-picked-240p.png') });
if (!/rendition 240p .*\(picked\)/.test(s.stats)) failures.push(`after picking 240p the stats say "${s.stats}"`);
const after = requests.filter(r => r.t >= pickedAt);
const first240 = after.find(r => r.url.includes('/240p.m3u8'));
if (!first240) failures.push('240p.m3u8 never requested after the pick');
else if (!/_HLS_msn=\d+/.test(first240.url)) failures.push(`the first 240p playlist request was not blocking: ${first240.url}`);
else notes.push(`switch to 240p: first request ${first240.url.split('/').pop()}`);
if (!after.some(r => /\/240p\/\d+\.\d+\.m4s/.test(r.url))) failures.push('no 240p part fetched after the pick');
notes.push(`latency ${await latency()} s on ${await levelNow()}p (picked)`);

// 3. Auto, then throttled, then not.
await page.selectOption('#quality', '-1');
await sleep(4000);
const cdp = await context.newCDPSession(page);
await cdp.send('Network.enable');
const top = Math.max(...s.heights);
s = await state();
const throttledAt = Date.now();
await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: 1.2e6 / 8, uploadThroughput: 1e6 });
let down = null;
for (let i = 0; i < 100 && !down; i++) {
  await sleep(300);
  const sw = await page.evaluate(() => window.__switches);
  down = sw.find(([t, h]) => t >= throttledAt && h < top);
}
await page.screenshot({ path: join(outDir, '3-throttled.png') });
if (!down) failures.push('throttled to 1.2 Mbit/s, hls.js did not switch down within 30 s');
else notes.push(`throttled: down to ${down[1]}p after ${((down[0] - throttledAt) / 1000).toFixed(1)} s`);
const freedAt = Date.now();
await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
let up = null;
for (let i = 0; i < 150 && !up; i++) {
  await sleep(300);
  const sw = await page.evaluate(() => window.__switches);
  up = sw.find(([t, h]) => t >= freedAt && h > (down ? down[1] : 0));
}
await page.screenshot({ path: join(outDir, '4-unthrottled.png') });
if (!up) failures.push('unthrottled, hls.js did not switch back up within 45 s');
else notes.push(`unthrottled: up to ${up[1]}p after ${((up[0] - freedAt) / 1000).toFixed(1)} s`);
// Every switch's first playlist request: blocking, from the rendition report.
const switches = await page.evaluate(() => window.__switches);
const waiting = await page.evaluate(() => window.__waiting);
s = await state();
if (s.fatal) failures.push(`fatal error: ${s.fatal}`);
if (pageErrors.length) failures.push(`page errors: ${pageErrors.join(' | ')}`);
const phase = (t) => t < pickedAt ? 'auto' : t < throttledAt ? 'picked 240p/auto' : t < freedAt ? 'throttled' : 'unthrottled';
notes.push(`${switches.length} switches (${switches.map(x => x[1] + 'p').join(' ')})`);
notes.push(`${waiting.length} stalls ("waiting")${waiting.length ? ': ' + waiting.map(t => phase(t) + ' +' + ((t - (t < throttledAt ? pickedAt : t < freedAt ? throttledAt : freedAt)) / 1000).toFixed(1) + ' s').join(', ') : ''}`);
await finish();
