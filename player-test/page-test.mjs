#!/usr/bin/env node
// The built-in player page at `/`, as a newcomer uses it: `llhls serve` with its demo stream,
// the page opened in headless Chromium.
//   1. A link to a stream that does not exist (`/#/live/nope/index.m3u8`) must say so in words
//      (HTTP 404, and which streams are live), not spin on "waiting for a stream" forever, and
//      the stream picker must not show another stream's name.
//   2. Picking the demo in the picker plays it and makes the link shareable (`#/live/demo/...`).
//   3. Below the video, for the host in the address bar: the full playlist URL with a working
//      copy button, the live streams from /streams.json (codecs, picture, bit rate, viewers),
//      and how to publish (OBS server and key, the ffmpeg command, the WHIP URL).
//   4. /publish with Chromium's fake camera and microphone: pick the devices, publish, and the
//      stream appears in /streams.json with a playlist that answers.
//   6. A packaged file (`llhls package` output on another server): it plays, the page says it
//      is on demand, the stats give the position instead of a latency, and the picker prompts
//      for a live stream instead of showing a stream's name or "other URL".
//   7. A live stream whose publisher stops: the page says the stream ended, playback stops at
//      the last picture (paused or ended: no spinner), and no latency is shown.
//   8. No script error on any page, no 404 (favicon included).
// Screenshots of every state go to player-test/out/page/.
//   node player-test/page-test.mjs [--llhls target/debug/llhls]
import { root, llhlsBin, outDirNamed, freePort, sleep } from './common.mjs';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join, extname, resolve } from 'node:path';

const outDir = outDirNamed('page');

const httpPort = await freePort(), rtmpPort = await freePort(), whipPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const log = [];
const server = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', `0.0.0.0:${whipPort}`, '--demo', 'true'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
server.stdout.on('data', d => log.push(d)); server.stderr.on('data', d => log.push(d));
const failures = [];
let browser = null;
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  server.kill('SIGKILL');
  writeFileSync(join(outDir, 'llhls.log'), Buffer.concat(log));
  console.log(`${failures.length ? 'FAIL' : 'PASS'} player page: ${failures.length ? failures.join('; ') : 'errors shown, picker and link follow the stream, demo plays, URLs and publishing shown, /publish publishes'} -> ${outDir}`);
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 180 s'); finish(1); }, 180000).unref();

// The demo (with its default 360p and 240p rungs: one codecs entry per rendition in the table)
// goes live once its first segments are complete.
for (let i = 0; ; i++) {
  try {
    const r = await fetch(`${origin}/live/demo/index.m3u8`);
    if (r.ok) break;
  } catch {}
  if (i > 300) { failures.push('the demo stream never went live'); await finish(1); }
  await sleep(100);
}

const { chromium } = await import('playwright-core');
browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
const context = await browser.newContext({ viewport: { width: 1000, height: 700 }, permissions: ['clipboard-read', 'clipboard-write'] });
const page = await context.newPage();
const pageErrors = [], notFound = [];
context.on('page', p => {
  p.on('pageerror', e => pageErrors.push(p.url() + ': ' + String(e)));
  p.on('response', r => { if (r.status() === 404 && !r.url().includes('/live/nope/')) notFound.push(r.url()); });
});
page.on('pageerror', e => pageErrors.push(String(e)));
page.on('response', r => { if (r.status() === 404 && !r.url().includes('/live/nope/')) notFound.push(r.url()); });
const text = (p, sel) => p.$eval(sel, e => e.value !== undefined && e.tagName === 'INPUT' ? e.value : e.textContent);

// 1. A link to a stream that does not exist.
await page.goto(`${origin}/#/live/nope/index.m3u8`);
let status = '';
for (let i = 0; i < 100; i++) {
  status = await page.evaluate(() => { const e = document.querySelector('#status'); return e ? e.className + ': ' + e.textContent : 'no status line'; });
  if (status.startsWith('error')) break;
  await sleep(200);
}
await page.screenshot({ path: join(outDir, '1-unknown-stream.png') });
if (!status.includes('No stream at /live/nope/index.m3u8 (HTTP 404)')) failures.push(`unknown stream: status line was "${status}"`);
if (!status.includes('Live now: demo')) failures.push(`unknown stream: status does not list the live streams: "${status}"`);
const pickerText = (p) => p.$eval('#streams', s => s.options[s.selectedIndex]?.textContent || '');
const picked = await pickerText(page);
if (picked !== 'pick a live stream') failures.push(`unknown stream: the picker shows "${picked}" while the page tries /live/nope`);

// 2. Pick the demo: it plays, the status clears, the link follows.
await page.selectOption('#streams', '/live/demo/index.m3u8');
let t = 0;
for (let i = 0; i < 100 && t < 2; i++) { await sleep(200); t = await page.$eval('#video', v => v.currentTime); }
await sleep(1000);
await page.screenshot({ path: join(outDir, '2-demo-playing.png') });
if (t < 2) failures.push(`demo: played only ${t.toFixed(2)} s after being picked`);
const hash = await page.evaluate(() => location.hash);
if (hash !== '#/live/demo/index.m3u8') failures.push(`demo: the link is "${hash}", not #/live/demo/index.m3u8`);
const status2 = await page.evaluate(() => document.querySelector('#status')?.textContent ?? 'no status line');
if (status2) failures.push(`demo: the status line still says "${status2}"`);
// The demo's default ladder: a newcomer sees the quality picker (auto and three renditions).
const quality = await page.evaluate(() => ({
  shown: !document.querySelector('#qualitylabel').hidden,
  options: [...document.querySelectorAll('#quality option')].map(o => o.textContent),
}));
if (!quality.shown || quality.options[0] !== 'auto' || quality.options.length !== 4) {
  failures.push(`demo: quality picker ${quality.shown ? 'offers ' + JSON.stringify(quality.options) : 'hidden'}, not auto + 720p, 360p, 240p`);
}
const stats = await page.$eval('#stats', e => e.textContent);
if (!/live latency \(hls\.js\) \d+\.\d\d s/.test(stats)) failures.push(`demo: stats show no latency: "${stats}"`);

// 3. What to do next, for this host.
const playlistUrl = await text(page, '#playlist');
if (playlistUrl !== `${origin}/live/demo/index.m3u8`) failures.push(`the playlist URL box says "${playlistUrl}"`);
await page.click('#copy');
const copied = await page.evaluate(() => navigator.clipboard.readText()).catch(e => 'clipboard: ' + e);
if (copied !== `${origin}/live/demo/index.m3u8`) failures.push(`the copy button copied "${copied}"`);
let row = '';
for (let i = 0; i < 50; i++) {
  row = await page.$$eval('#live tbody tr', trs => trs.map(tr => [...tr.cells].map(c => c.textContent).join(' | ')).join('\n'));
  if (/^demo \| (avc1\.[0-9a-f]+, )+mp4a\.40\.2 \| 1280x720 @ 30 fps \| [\d.]+ (Mbit|kbit)\/s \| [1-9]/m.test(row)) break;
  await sleep(200);
}
if (!/^demo \| (avc1\.[0-9a-f]+, )+mp4a\.40\.2 \| 1280x720 @ 30 fps \| [\d.]+ (Mbit|kbit)\/s \| [1-9]/m.test(row)) failures.push(`live streams table: "${row}"`);
const host = new URL(origin).hostname;
const want = {
  '#obs-server': `rtmp://${host}:${rtmpPort}/live`,
  '#obs-key': 'test',
  '#whip-url': `${origin}/whip/live/test`,
};
for (const [sel, v] of Object.entries(want)) {
  const got = await text(page, sel);
  if (got !== v) failures.push(`${sel} says "${got}", not "${v}"`);
}
const ff = await text(page, '#ffmpeg');
if (!ff.includes(`-f flv "rtmp://${host}:${rtmpPort}/live/test"`)) failures.push(`ffmpeg command: "${ff}"`);
await page.fill('#pubname', 'cam');
if ((await text(page, '#whip-url')) !== `${origin}/whip/live/cam`) failures.push('the WHIP URL does not follow the stream name');
await page.screenshot({ path: join(outDir, '3-what-next.png'), fullPage: true });

// 4. Publish from the browser at /publish (fake camera and microphone).
const pub = await context.newPage();
await pub.goto(`${origin}/publish?name=cam`);
let cams = [];
for (let i = 0; i < 50 && !cams.length; i++) {
  cams = await pub.$$eval('#camera option', os => os.map(o => o.textContent).filter(t => !t.startsWith('no ') && !t.startsWith('(')));
  if (!cams.length) await sleep(100);
}
if (!cams.length) failures.push('/publish lists no camera');
const warning = await text(pub, '#warning');
if (warning) failures.push(`/publish warns on a secure origin: "${warning}"`);
if ((await text(pub, '#endpoint')) !== `${origin}/whip/live/cam`) failures.push(`/publish endpoint: "${await text(pub, '#endpoint')}"`);
await pub.click('#start');
let state = {};
for (let i = 0; i < 100; i++) {
  state = await pub.evaluate(() => window.__pub);
  if (state.state.startsWith('publishing') || state.error) break;
  await sleep(200);
}
if (!state.state.startsWith('publishing')) failures.push(`/publish: state "${state.state}", error ${state.error}`);
let listed = false, playlistOk = false;
for (let i = 0; i < 100 && !(listed && playlistOk); i++) {
  const list = await (await fetch(`${origin}/streams.json`)).json();
  listed = list.some(s => s.name === 'cam' && s.codecs.some(c => c.startsWith('avc1')));
  playlistOk = (await fetch(`${origin}/live/cam/index.m3u8`)).ok;
  if (!(listed && playlistOk)) await sleep(200);
}
if (!listed) failures.push('the stream published from /publish is not in /streams.json');
if (!playlistOk) failures.push('the playlist of the stream published from /publish does not answer');
const watch = await text(pub, '#playlist');
if (watch !== `${origin}/live/cam/index.m3u8`) failures.push(`/publish shows the playlist "${watch}"`);
await sleep(1000);
await pub.screenshot({ path: join(outDir, '4-publish.png'), fullPage: true });
await pub.click('#stop');
const favicon = await fetch(`${origin}/favicon.ico`);
if (!favicon.ok) failures.push(`/favicon.ico answers ${favicon.status}`);

// 4b. A server with publish keys: the instructions carry the key.
const [kHttp, kRtmp] = [await freePort(), await freePort()];
const keyed = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${kHttp}`, '--rtmp', `127.0.0.1:${kRtmp}`,
  '--whip-udp', 'off', '--demo', 'false', '--publish-keys', 'k1'], { stdio: 'ignore', cwd: root });
try {
  const kOrigin = `http://127.0.0.1:${kHttp}`;
  for (let i = 0; i < 100; i++) { try { if ((await fetch(`${kOrigin}/healthz`)).ok) break; } catch {} await sleep(100); }
  const kp = await context.newPage();
  await kp.goto(`${kOrigin}/`);
  await kp.waitForFunction(() => !document.getElementById('pubkeylabel').hidden, null, { timeout: 10000 }).catch(() => {});
  if ((await text(kp, '#obs-key')) !== 'test?key=KEY') failures.push(`keys: the stream key shows "${await text(kp, '#obs-key')}"`);
  await kp.fill('#pubkey', 'k1');
  if ((await text(kp, '#obs-key')) !== 'test?key=k1') failures.push(`keys: typing the key gives "${await text(kp, '#obs-key')}"`);
  if ((await text(kp, '#whip-url')) !== 'WHIP is off on this server (whip_udp = off)') failures.push(`keys: WHIP off shows "${await text(kp, '#whip-url')}"`);
  if (!(await kp.$eval('#publish-link', a => a.hidden))) failures.push('keys: the /publish link shows with WHIP off');
  await kp.screenshot({ path: join(outDir, '5-keys-required.png'), fullPage: true });
  await kp.close();
} finally { keyed.kill('SIGKILL'); }

// What a viewer reads: the status line and the stats under the video, as rendered.
const seen = (p) => p.evaluate(() => ({
  status: document.querySelector('#status').innerText.trim(),
  statusKind: document.querySelector('#status').className,
  stats: document.querySelector('#stats').innerText,
  video: (v => ({ t: v.currentTime, paused: v.paused, ended: v.ended, ready: v.readyState }))(document.querySelector('#video')),
}));

// 6. A packaged file served by another web server (CORS on, as nginx's /vod/ location).
// A short live stream for step 7 starts now, so it is live by the time step 6 is done: 16 s
// of 1 s GOPs, then ffmpeg stops publishing (RTMP deleteStream: the stream ends at once).
const shortPub = spawn('ffmpeg', ['-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '16', '-c:v', 'libx264', '-preset', 'veryfast',
  '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'flv',
  `rtmp://127.0.0.1:${rtmpPort}/live/short`], { stdio: 'ignore' });
const shortDone = new Promise(r => shortPub.on('exit', r));
const vodDir = join(outDir, 'vod');
rmSync(vodDir, { recursive: true, force: true });
const pk = spawnSync(llhlsBin, ['package', '-q', join(root, 'samples/media/demo.mp4'), vodDir], { encoding: 'utf8' });
if (pk.status !== 0) failures.push(`llhls package failed: ${pk.stderr}`);
const types = { '.m3u8': 'application/vnd.apple.mpegurl', '.m4s': 'video/iso.segment', '.mp4': 'video/mp4' };
const vodServer = http.createServer((req, res) => {
  const file = resolve(vodDir, '.' + decodeURIComponent(new URL(req.url, 'http://x').pathname));
  let body = null;
  try { if (file.startsWith(vodDir)) body = readFileSync(file); } catch {}
  res.writeHead(body ? 200 : 404, { 'Content-Type': types[extname(file)] || 'application/octet-stream', 'Access-Control-Allow-Origin': '*' });
  res.end(body);
});
const vodPort = await freePort();
await new Promise(r => vodServer.listen(vodPort, '127.0.0.1', r));
const vodUrl = `http://127.0.0.1:${vodPort}/index.m3u8`;
try {
  const vp = await context.newPage();
  await vp.goto(`${origin}/#${vodUrl}`);
  let v = {};
  for (let i = 0; i < 100; i++) {
    v = await seen(vp);
    if (v.statusKind === 'ended' && v.video.t > 2 && v.stats.includes('on demand')) break;
    await sleep(200);
  }
  await vp.screenshot({ path: join(outDir, '6-packaged-file.png') });
  if (v.status !== 'On demand: a packaged file, not a live stream.') failures.push(`packaged file: the status line says "${v.status}"`);
  if (!(v.video.t > 2)) failures.push(`packaged file: played only ${v.video.t} s`);
  if (!/^on demand, at \d+\.\d\d s of 10\.\d\d s$/m.test(v.stats)) failures.push(`packaged file: the stats say "${v.stats}"`);
  if (/latency|n\/a/.test(v.stats.split('\n').slice(0, 2).join('\n'))) failures.push(`packaged file: the stats show a latency: "${v.stats}"`);
  const vPicked = await pickerText(vp);
  if (vPicked !== 'pick a live stream') failures.push(`packaged file: the picker shows "${vPicked}"`);
  if ((await text(vp, '#url')) !== vodUrl) failures.push(`packaged file: the URL box says "${await text(vp, '#url')}"`);
  await vp.close();
} finally { vodServer.close(); }

// 7. A live stream whose publisher stops.
let shortLive = false;
for (let i = 0; i < 150 && !shortLive; i++) {
  shortLive = (await fetch(`${origin}/live/short/index.m3u8`).catch(() => ({ ok: false }))).ok;
  if (!shortLive) await sleep(100);
}
if (!shortLive) failures.push('the short live stream never went live');
const sp = await context.newPage();
await sp.goto(`${origin}/#/live/short/index.m3u8`);
let s7 = {};
for (let i = 0; i < 40; i++) {
  s7 = await seen(sp);
  if (/live latency \(hls\.js\) \d+\.\d\d s/.test(s7.stats)) break;
  await sleep(250);
}
if (!/live latency \(hls\.js\) \d+\.\d\d s/.test(s7.stats)) failures.push(`short stream: no live latency while live: "${s7.stats}"`);
await shortDone;
for (let i = 0; i < 100; i++) {
  s7 = await seen(sp);
  if (s7.statusKind === 'ended' && (s7.video.paused || s7.video.ended)) break;
  await sleep(200);
}
await sleep(1000);
s7 = await seen(sp);
await sp.screenshot({ path: join(outDir, '7-stream-ended.png') });
if (!s7.status.startsWith('Stream ended: nothing more will come.')) failures.push(`ended stream: the status line says "${s7.status}"`);
if (!(s7.video.paused || s7.video.ended)) failures.push(`ended stream: the video still waits for media (spinner): ${JSON.stringify(s7.video)}`);
if (!/^ended, stopped at \d+\.\d\d s/m.test(s7.stats)) failures.push(`ended stream: the stats say "${s7.stats}"`);
if (/latency|n\/a/.test(s7.stats.split('\n').slice(0, 2).join('\n'))) failures.push(`ended stream: the stats show a latency: "${s7.stats}"`);
const sPicked = await pickerText(sp);
if (sPicked !== 'pick a live stream') failures.push(`ended stream: the picker shows "${sPicked}"`);
await sp.close();

// 8. Nothing broke on the way.
if (pageErrors.length) failures.push(`script errors on the page: ${pageErrors.slice(0, 3).join(' | ')}`);
if (notFound.length) failures.push(`404s: ${notFound.slice(0, 3).join(', ')}`);
await finish();
