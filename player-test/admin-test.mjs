#!/usr/bin/env node
// The operator view (`/#/admin` on the built-in player page) in headless Chromium, against
// `llhls serve` with an admin token, the demo stream and an ffmpeg RTMP publisher:
//   1. The page asks for the token; a wrong one says so in words (HTTP 401) and is not kept.
//   2. The right one shows both streams from GET /api/v1/streams: the publisher's protocol and
//      address, renditions, the bit rate in (changing from one refresh to the next, with a
//      sparkline that grows) and the live edge age. The token is in session storage, not in the
//      URL, and survives a reload of the tab.
//   3. Kick (after the confirm dialog) ends the RTMP stream: its row goes, ffmpeg is
//      disconnected, the demo (no publisher, no Kick button) stays.
//   4. A server without an admin token: the page says at once (before any token is typed) that
//      the admin API is off and how to turn it on.
//   5. Leaving the operator view for a stream plays it (the player page still works), and no
//      script error happened.
// Screenshots go to player-test/out/admin/ (the path of the main one is printed).
//   node player-test/admin-test.mjs [--llhls target/debug/llhls]
import { root, llhlsBin, outDirNamed, freePort, sleep, launchChromium } from './common.mjs';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const outDir = outDirNamed('admin');
const TOKEN = 'admin-test-token-0123456789';

const httpPort = await freePort(), rtmpPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const log = [];
const server = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', 'off', '--demo', 'true', '--demo-ladder', 'off', '--admin-token', TOKEN],
{ stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
server.stdout.on('data', d => log.push(d)); server.stderr.on('data', d => log.push(d));
// A second server without a token, for the "admin API is off" message.
const offPort = await freePort();
const offServer = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${offPort}`, '--rtmp', `127.0.0.1:${await freePort()}`,
  '--whip-udp', 'off', '--demo', 'false'], { stdio: 'ignore', cwd: root });
// The RTMP port listens once /healthz answers.
for (let i = 0; ; i++) {
  try { if ((await fetch(`${origin}/healthz`)).ok) break; } catch {}
  if (i > 300) { console.log('FAIL operator view: the server did not start'); server.kill('SIGKILL'); offServer.kill('SIGKILL'); process.exit(1); }
  await sleep(100);
}
// An OBS-like RTMP publisher: 640x360 with 1 s keyframes and AAC audio, for two minutes.
const ffmpeg = spawn('ffmpeg', ['-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '120', '-c:v', 'libx264', '-preset', 'veryfast',
  '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'flv',
  `rtmp://127.0.0.1:${rtmpPort}/live/cam1`], { stdio: 'ignore' });
let ffmpegExited = false;
ffmpeg.on('exit', () => { ffmpegExited = true; });

const failures = [];
let browser = null, shot = '';
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  server.kill('SIGKILL'); offServer.kill('SIGKILL'); if (!ffmpegExited) ffmpeg.kill('SIGKILL');
  writeFileSync(join(outDir, 'llhls.log'), Buffer.concat(log));
  if (shot) console.log(`screenshot: ${shot}`);
  console.log(`${failures.length ? 'FAIL' : 'PASS'} operator view: ${failures.length ? failures.join('; ') : 'wrong token and API off explained, streams listed with live bit rate and edge age, kick ends a stream, player still plays'} -> ${outDir}`);
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 150 s'); finish(1); }, 150000).unref();

// Both streams live before the page opens.
for (const name of ['demo', 'cam1']) {
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${origin}/live/${name}/index.m3u8`)).ok) break; } catch {}
    if (i > 400) { failures.push(`${name} never went live`); await finish(1); }
    await sleep(100);
  }
}

browser = await launchChromium();
const context = await browser.newContext({ viewport: { width: 1280, height: 640 } });
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', e => pageErrors.push(String(e)));
const until = async (what, ms = 10000, arg = null) => {
  for (let t = 0; t < ms; t += 100) { if (await page.evaluate(what, arg).catch(() => false)) return true; await sleep(100); }
  return false;
};
const msg = () => page.$eval('#admin-msg', e => e.className + ': ' + e.innerText);
const rows = () => page.$$eval('#admin-streams tbody tr[data-stream]', trs => Object.fromEntries(trs.map(tr =>
  [tr.dataset.stream, { cells: [...tr.cells].map(c => c.innerText.replace(/\s+/g, ' ').trim()),
    bitrate: tr.querySelector('.bitrate').firstChild.textContent,
    points: tr.querySelector('.bitrate polyline').getAttribute('points').split(' ').filter(Boolean).length,
    kick: !!tr.querySelector('button.kick') }])));

// 1. A wrong token.
await page.goto(`${origin}/#/admin`);
if (!(await until(() => !document.getElementById('admin-login').hidden))) failures.push('no token form at /#/admin');
if (await page.$eval('#video', v => v.offsetParent !== null)) failures.push('the video shows in the operator view');
await page.fill('#admin-token', 'not-the-token-at-all');
await page.click('#admin-login button[type=submit]');
await until(() => document.getElementById('admin-msg').className === 'error');
const wrong = await msg();
await page.screenshot({ path: join(outDir, '1-wrong-token.png') });
if (!/^error: Wrong token: the server refused it \(HTTP 401\)/.test(wrong)) failures.push(`wrong token: the message is "${wrong}"`);
if (await page.evaluate(() => sessionStorage.getItem('llhls-admin-token'))) failures.push('a wrong token stays in session storage');

// 2. The right token: the streams, refreshed every second.
await page.fill('#admin-token', TOKEN);
await page.click('#admin-login button[type=submit]');
if (!(await until(() => document.querySelectorAll('#admin-streams tr[data-stream]').length === 2))) {
  failures.push(`after the right token: ${await msg()}, rows ${JSON.stringify(await rows().catch(() => ({})))}`);
}
if (page.url().includes(TOKEN)) failures.push(`the token is in the URL: ${page.url()}`);
// Reloading the tab keeps it (session storage) and goes on refreshing.
await page.reload();
await until(() => window.__admin && window.__admin.refreshes >= 1);
if (!(await page.$eval('#admin-login', f => f.hidden))) failures.push('after a reload the token is asked again');
// A viewer of cam1 in another tab (the operator view counts it).
const viewer = await context.newPage();
viewer.on('pageerror', e => pageErrors.push(String(e)));
await viewer.goto(`${origin}/#/live/cam1/index.m3u8`);
const api = await (await fetch(`${origin}/api/v1/streams/cam1`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
// A few refreshes: the sparkline grows and the bit rate in is measured afresh each second.
const bitrates = new Set();
let r = {}, viewersSeen = '';
for (let i = 0; i < 10; i++) {
  const n = await page.evaluate(() => window.__admin.refreshes);
  if (!(await until((n) => window.__admin.refreshes > n, 3000, n))) failures.push(`no refresh within 3 s after refresh ${n}`);
  r = await rows();
  if (r.cam1) bitrates.add(r.cam1.bitrate);
  // A held request is counted while it waits: between an answer and the player's next request
  // it is not, so any refresh showing the viewer will do.
  if (r.cam1 && /^[1-9]\d* \([1-9]\d* held\)$/.test(r.cam1.cells[4])) viewersSeen = r.cam1.cells[4];
}
const refreshes = await page.evaluate(() => window.__admin.refreshes);
await viewer.close();
const state = await page.evaluate(() => window.__admin.streams);
shot = join(outDir, '2-streams.png');
await page.screenshot({ path: shot, fullPage: true });
console.log(`cam1 bit rates in over 10 refreshes: ${[...bitrates].join(", ")}; viewers seen "${viewersSeen}"; ${refreshes} refreshes; state ${JSON.stringify(state)}`);
if (!r.cam1 || !r.demo) failures.push(`streams listed: ${JSON.stringify(Object.keys(r))}`);
else {
  const cam = r.cam1.cells.join(' | ');
  if (!/^cam1 \| RTMP from 127\.0\.0\.1:\d+ since /.test(cam)) failures.push(`cam1 row: "${cam}"`);
  if (!/\| [\d.]+ (kbit|Mbit)\/s window [\d.]+ (kbit|Mbit)\/s \| \d+ ms /.test(cam) && !/\| [\d.]+ (kbit|Mbit)\/s window [\d.]+ (kbit|Mbit)\/s \| [\d.]+ s /.test(cam)) {
    failures.push(`cam1 row has no bit rate in and edge age: "${cam}"`);
  }
  if (!/part [\d.]+ s, hold-back [\d.]+ s/.test(cam)) failures.push(`cam1 row has no part target and hold-back: "${cam}"`);
  if (r.cam1.cells[5] !== api.renditions.join(', ')) failures.push(`cam1 renditions: "${r.cam1.cells[5]}", the API says ${JSON.stringify(api.renditions)}`);
  if (!viewersSeen) failures.push(`cam1 never showed a viewer with a player open (last: "${r.cam1.cells[4]}")`);
  if (!r.cam1.kick) failures.push('cam1 has no Kick button');
  if (r.cam1.points < 6) failures.push(`cam1 sparkline has ${r.cam1.points} points after ${refreshes} refreshes`);
  if (!/^demo \| built-in demo \(no publisher\)/.test(r.demo.cells.join(' | '))) failures.push(`demo row: "${r.demo.cells.join(' | ')}"`);
  if (r.demo.kick) failures.push('the demo has a Kick button');
}
if (bitrates.size < 3) failures.push(`the bit rate in did not change across refreshes: ${[...bitrates].join(', ')}`);
if (!(state.cam1 && state.cam1.rate > 50000)) failures.push(`cam1 bit rate in: ${JSON.stringify(state.cam1)}`);
// A stream fed in real time: its playlists changed within the last few parts.
if (!(state.cam1 && state.cam1.edge_age_ms < 5000)) failures.push(`cam1 live edge age: ${JSON.stringify(state.cam1)}`);

// 3. Kick cam1.
let dialog = '';
page.once('dialog', d => { dialog = d.message(); d.accept(); });
await page.click('#admin-streams tr[data-stream="cam1"] button.kick');
if (!dialog.includes('Kick the publisher of "cam1"')) failures.push(`confirm dialog: "${dialog}"`);
if (!(await until(() => !document.querySelector('#admin-streams tr[data-stream="cam1"]'), 10000))) failures.push('cam1 still listed after the kick');
const kicked = await msg();
if (!kicked.startsWith('info: Kicked the publisher of cam1.')) failures.push(`after the kick: "${kicked}"`);
for (let i = 0; i < 100 && !ffmpegExited; i++) await sleep(100);
if (!ffmpegExited) failures.push('ffmpeg is still connected after the kick');
if (!(await rows()).demo) failures.push('the demo went with the kick');
await page.screenshot({ path: join(outDir, '3-kicked.png'), fullPage: true });

// 4. A server without an admin token.
const off = await context.newPage();
off.on('pageerror', e => pageErrors.push(String(e)));
for (let i = 0; i < 100; i++) { try { if ((await fetch(`http://127.0.0.1:${offPort}/healthz`)).ok) break; } catch {} await sleep(100); }
await off.goto(`http://127.0.0.1:${offPort}/#/admin`);
await off.waitForFunction(() => document.getElementById('admin-msg').className === 'error', null, { timeout: 10000 }).catch(() => {});
const offMsg = await off.$eval('#admin-msg', e => e.innerText);
await off.screenshot({ path: join(outDir, '4-api-off.png') });
if (!offMsg.includes('The admin API is off on this server (HTTP 404)') || !offMsg.includes('--admin-token')) failures.push(`API off: "${offMsg}"`);
await off.close();

// 5. Back to the player: the demo plays.
await page.click('#admin-streams tr[data-stream="demo"] a');
let t = 0;
for (let i = 0; i < 100 && t < 2; i++) { await sleep(200); t = await page.$eval('#video', v => v.currentTime); }
await page.screenshot({ path: join(outDir, '5-player-again.png') });
if (t < 2) failures.push(`the demo played only ${t.toFixed(2)} s after leaving the operator view`);
if (await page.$eval('#admin', e => e.offsetParent !== null)) failures.push('the operator view still shows in the player');
if (pageErrors.length) failures.push(`script errors: ${pageErrors.slice(0, 3).join(' | ')}`);
await finish();
