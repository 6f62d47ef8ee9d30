#!/usr/bin/env node
// A rung of the ABR ladder whose encoder hangs while a player is on it (issue 11): `llhls serve
// --ladder 360p,240p`, ffmpeg publishing 640x480 over RTMP, one player on auto with its
// choice capped at 360p (as `capLevelToPlayerSize` caps a small player):
//   1. it plays 360p;
//   2. the 360p encoder's threads are stopped (player-test/hang-threads.py: ptrace, every other
//      thread of the server runs on): the server withdraws the rung (its queue fills within a
//      second), lists the rest of its playlist as GAP segments and parts (RFC 8216bis 6.2.1)
//      instead of answering 404, and leaves it out of the multivariant playlist;
//   3. the player moves to another rendition and plays on: no fatal error, the playhead moves
//      again, and where it waited (a `waiting` event) and for how long is reported. The source
//      rendition and 240p never wait for the hung rung.
//   node player-test/withdraw-test.mjs [--player hlsjs|shaka] [--llhls target/debug/llhls]
// hls.js: the page the server ships at `/` (hls.js 1.7.4), `hls.autoLevelCapping` at 360p.
// Shaka: page.html (Shaka 5.2, lowLatencyMode), `abr.restrictions.maxHeight` 360.
// Out: player-test/out/withdraw[-shaka]/ (server log, report.json with the requests).
import { outDirNamed, sleep, opt, launchChromium, servePlayerPages, exposePlayer, here, ladderStream } from './common.mjs';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const playerKind = opt('player', 'hlsjs');
if (!['hlsjs', 'shaka'].includes(playerKind)) throw new Error(`unknown --player ${playerKind}`);
const shaka = playerKind === 'shaka';
const playerName = shaka ? 'Shaka' : 'hls.js';
const outDir = outDirNamed(shaka ? 'withdraw-shaka' : 'withdraw');

const stream = await ladderStream(100);
const { origin, src, server, serverLog } = stream;
let pages = null, browser = null, hang = null;
const failures = [], notes = [], report = {};
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  pages?.server.close();
  if (hang) hang.kill('SIGTERM');
  stream.stop();
  writeFileSync(join(outDir, 'llhls.log'), serverLog());
  writeFileSync(join(outDir, 'report.json'), JSON.stringify(report, null, 1));
  console.log(`${failures.length ? 'FAIL' : 'PASS'} withdrawn rung in ${playerName}: ${failures.length ? failures.join('; ') : notes.join('; ')} -> ${outDir}`);
  if (failures.length && notes.length) console.log('notes: ' + notes.join('; '));
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 120 s'); finish(1); }, 120000).unref();
const notLive = await stream.live();
if (notLive) { failures.push(notLive); await finish(1); }
const multivariant = stream.multivariant;
// Each video rendition's media playlist by picture height.
const playlistOf = (mv) => new Map([...mv.matchAll(/RESOLUTION=\d+x(\d+)[^\n]*\n([^\n#]+)/g)].map(m => [Number(m[1]), m[2].trim()]));
const before = playlistOf(multivariant);
for (const h of [480, 360, 240]) if (!before.has(h)) failures.push(`no ${h}-line rendition: ${multivariant}`);
if (failures.length) await finish(1);

browser = await launchChromium();
const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
const page = await context.newPage();
const pageErrors = [], requests = [];
page.on('pageerror', e => pageErrors.push(String(e)));
page.on('response', r => requests.push({ t: Date.now(), url: r.url().replace(origin, ''), status: r.status() }));
if (shaka) {
  pages = await servePlayerPages();
  const config = JSON.stringify({ abr: { restrictions: { maxHeight: 360 } } });
  await page.goto(`http://127.0.0.1:${pages.port}/?n=1&player=shaka&src=${encodeURIComponent(src)}&shakaConfig=${encodeURIComponent(config)}`);
} else {
  await page.goto(`${origin}/#/live/abr/index.m3u8`);
}
await page.waitForFunction((shaka) => shaka ? players[0]?.shaka?.getVariantTracks().length : typeof hls !== 'undefined' && hls?.levels.length, shaka, { timeout: 30000 })
  .catch(() => {});
await exposePlayer(page, shaka);
if (!shaka) await page.evaluate(() => { hls.autoLevelCapping = hls.levels.findIndex(l => l.height === 360); });
await page.evaluate(() => {
  window.__waiting = [];
  window.__playing = [];
  const video = __p.video;
  video.addEventListener('waiting', () => window.__waiting.push({ t: Date.now(), currentTime: video.currentTime, level: __p.height() }));
  video.addEventListener('playing', () => window.__playing.push(Date.now()));
  window.__switches = [];
  __p.onSwitch(h => window.__switches.push([Date.now(), h]));
});
const state = () => page.evaluate(() => ({ t: Date.now(), time: __p.video.currentTime, height: __p.height(), fatal: __p.fatal() }));

// 1. Playing 360p.
let s = await state();
for (let i = 0; i < 150 && !(s.time > 2 && s.height === 360); i++) { await sleep(200); s = await state(); }
if (s.fatal) failures.push(`fatal error before the hang: ${s.fatal}`);
if (!(s.time > 2 && s.height === 360)) { failures.push(`not playing 360p after 30 s: ${JSON.stringify(s)}`); await finish(1); }
await sleep(5000);
const waitingBefore = (await page.evaluate(() => window.__waiting)).length;
if (waitingBefore) notes.push(`${waitingBefore} stall(s) before the hang`);

// 2. The 360p encoder hangs.
hang = spawn('python3', [join(here, 'hang-threads.py'), String(server.pid), 'rung-360p'], { stdio: ['ignore', 'pipe', 'pipe'] });
const hangOut = [];
hang.stdout.on('data', d => hangOut.push(d)); hang.stderr.on('data', d => hangOut.push(d));
const hungAt = Date.now();
for (let i = 0; i < 50 && !Buffer.concat(hangOut).toString().includes('stopped'); i++) {
  if (hang.exitCode !== null) break;
  await sleep(100);
}
const hangSaid = Buffer.concat(hangOut).toString().trim();
if (!hangSaid.includes('"stopped"')) { failures.push(`could not hang the 360p encoder: ${hangSaid || `exit ${hang.exitCode}`}`); await finish(1); }
notes.push(`360p encoder hung (${JSON.parse(hangSaid).stopped.length} threads)`);
let withdrawnAt = null;
for (let i = 0; i < 100 && withdrawnAt === null; i++) {
  if (serverLog().includes('ABR rung withdrawn')) withdrawnAt = Date.now();
  else await sleep(100);
}
if (withdrawnAt === null) { failures.push('the server did not withdraw the hung rung within 10 s'); await finish(1); }
const why = serverLog().split('\n').find(l => l.includes('ABR rung withdrawn'));
notes.push(`withdrawn ${((withdrawnAt - hungAt) / 1000).toFixed(1)} s after the hang (${why.replace(/^\S+\s+\S+\s+/, '').slice(0, 120)})`);

// 3. Playing on, 20 s.
const t0 = await state();
await sleep(20000);
const t1 = await state();
const switches = (await page.evaluate(() => window.__switches)).filter(([t]) => t >= hungAt);
const waiting = (await page.evaluate(() => window.__waiting)).filter(w => w.t >= hungAt);
const playing = (await page.evaluate(() => window.__playing)).filter(t => t >= hungAt);
if (t1.fatal) failures.push(`fatal error after the hang: ${t1.fatal}`);
if (pageErrors.length) failures.push(`page errors: ${pageErrors.join(' | ')}`);
const moved = t1.time - t0.time;
if (!(moved > 15)) failures.push(`the playhead moved ${moved.toFixed(1)} s in the 20 s after the withdrawal`);
if (t1.height === 360) failures.push(`still on 360p (the withdrawn rung) 20 s after the withdrawal`);
notes.push(`now on ${t1.height}p; switches after the hang: ${switches.map(([t, h]) => `${h}p at +${((t - hungAt) / 1000).toFixed(1)} s`).join(', ') || 'none'}`);
notes.push(`playhead moved ${moved.toFixed(1)} s in 20 s`);
const stallMs = waiting.map(w => (playing.find(p => p >= w.t) ?? Date.now()) - w.t);
notes.push(waiting.length ? `${waiting.length} stall(s) after the hang: ${waiting.map((w, k) => `at +${((w.t - hungAt) / 1000).toFixed(1)} s on ${w.level}p for ${(stallMs[k] / 1000).toFixed(2)} s`).join(', ')}` : '0 stalls after the hang');

// The server's side: 360p leaves the multivariant playlist; its media playlist goes on as GAP,
// without a preload hint; 240p and the source go on with media.
const mvAfter = await (await fetch(src)).text();
if (playlistOf(mvAfter).has(360)) failures.push('the multivariant playlist still lists 360p');
const pl360 = await (await fetch(`${origin}/live/abr/${before.get(360)}`)).text();
if (!/GAP=YES/.test(pl360) || !pl360.includes('#EXT-X-GAP')) failures.push(`360p's playlist has no GAP parts and segments:\n${pl360.slice(-600)}`);
if (pl360.includes('#EXT-X-PRELOAD-HINT')) failures.push('360p\'s playlist still hints a part that will never come');
for (const h of [480, 240]) {
  const pl = await (await fetch(`${origin}/live/abr/${before.get(h)}`)).text();
  const tail = pl.split('\n').filter(l => l.startsWith('#EXT-X-PART:')).slice(-5);
  if (!tail.length || tail.some(l => l.includes('GAP=YES'))) failures.push(`${h}p's last parts are not media: ${tail.join(' | ')}`);
}
const gone = requests.filter(r => r.t >= hungAt && r.status === 404);
if (gone.length) notes.push(`${gone.length} requests answered 404 after the hang (${gone.slice(0, 3).map(r => r.url).join(', ')})`);
report.notes = notes;
report.waiting = waiting.map(w => ({ ...w, t: w.t - hungAt }));
report.switches = switches.map(([t, h]) => [t - hungAt, h]);
report.requests = requests.filter(r => r.t >= hungAt - 3000).map(r => ({ ...r, t: r.t - hungAt }));
await finish();
