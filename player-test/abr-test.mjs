#!/usr/bin/env node
// ABR ladder in a real player in headless Chromium: `llhls serve --ladder 360p,240p` with
// ffmpeg publishing 640x480 over RTMP, played by
//   --player hlsjs (default): the built-in player page at `/` (hls.js 1.7.4);
//   --player shaka: Shaka Player 5.2 (streaming.lowLatencyMode) in the test page, page.html.
// hls.js only (the built-in page's controls):
//   1. The page's quality picker lists `auto` and the three renditions; the stats line names
//      the one playing.
//   2. Picking 240p plays 240p (its parts are fetched; the stats say "240p ... (picked)"), and
//      the first request for 240p.m3u8 after the pick is a blocking request (_HLS_msn), built
//      from the rendition report of the playlist it left.
// Both players:
//   3. On auto (the player's own ABR), once it plays the top rendition (hls.js: from the live
//      edge; after a stall it plays on behind, see below), the bandwidth is
//      throttled to 1.4 Mbit/s (Chromium's DevTools protocol, Network.emulateNetworkConditions)
//      for 15 s: the player switches down (its own switch events: hls.js LEVEL_SWITCHED,
//      Shaka `adaptation`, and its active track; and it fetches the lower rendition's parts);
//      unthrottled, it switches back up. No fatal error and no stall (a `waiting` event after
//      playback started) throughout; requests.json has every request's timing and the
//      player's bandwidth estimate four times a second.
//   4. The first request for a rendition's media playlist after each switch: hls.js builds a
//      blocking request (_HLS_msn/_HLS_part) from the EXT-X-RENDITION-REPORT of the playlist it
//      leaves. Shaka 5.2 does not read rendition reports (README, player notes): its first
//      request is the plain playlist, its next ones block.
// Screenshots go to player-test/out/abr/ (out/abr-shaka/ for Shaka).
//   node player-test/abr-test.mjs [--player hlsjs|shaka] [--llhls target/debug/llhls] [--player-debug]
//        [--shaka-config JSON] [--shaka-abr transfer|guard] [--stock-abr] [--static-connection]
// (--shaka-config: passed to Shaka's player.configure() after lowLatencyMode, e.g.
// '{"manifest":{"hls":{"sequenceMode":true}}}' to measure the workaround in the README's
// player notes; the default is Shaka's own configuration)
// (--player-debug: hls.js with debug: true, Shaka's debug build; their log, and every
// SourceBuffer abort(), remove(), timestampOffset change and append with the buffered ranges after it, in
// player-console.log)
import { outDirNamed, sleep, flag, opt, launchChromium, servePlayerPages, knownOpen, traceMediaSource, exposePlayer, ladderStream } from './common.mjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const playerKind = opt('player', 'hlsjs');
if (!['hlsjs', 'shaka'].includes(playerKind)) throw new Error(`unknown --player ${playerKind}`);
const shaka = playerKind === 'shaka';
// --shaka-abr transfer|guard: Shaka's SimpleAbrManager fed transfer times (page.html,
// TransferTimeAbr), or with an emergency switch down (GuardAbr); measurements for the README's
// player notes. The default is Shaka's own.
const shakaAbr = opt('shaka-abr', '');
if (shakaAbr && !['transfer', 'guard'].includes(shakaAbr)) throw new Error(`unknown --shaka-abr ${shakaAbr}`);
const playerName = shaka ? 'Shaka' : 'hls.js';
const outDir = outDirNamed(shaka ? 'abr-shaka' : 'abr');

const stream = await ladderStream(110);
const { origin } = stream;
let pages = null;
const failures = [], notes = [];
// Checks named in LLHLS_PLAYER_KNOWN (comma-separated) are reported as KNOWN instead of
// failing the run, for measuring the players' own ABR as shipped (`--stock-abr`, Shaka without
// `--shaka-abr`), whose causes are in their code (README, player notes): `abr-stalls` (a stall
// while the bandwidth changes) and `abr-shaka-up` (Shaka slow to climb to the top, below).
const knownFailures = [];
let browser = null;
const playerConsole = [];
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  pages?.server.close();
  stream.stop();
  writeFileSync(join(outDir, 'llhls.log'), stream.serverLog());
  // A rung the server withdrew (its encoder fell behind: an overloaded machine) leaves the
  // player switching to a rendition that answers 404; say so first.
  const withdrawn = stream.serverLog().split('\n').filter(l => l.includes('ABR rung withdrawn'));
  if (withdrawn.length) failures.unshift(`the server withdrew ${withdrawn.length} rung(s): ${withdrawn[0].replace(/^\S+\s+/, '')}`);
  if (playerConsole.length) writeFileSync(join(outDir, 'player-console.log'), playerConsole.join('\n'));
  console.log(`${failures.length ? 'FAIL' : 'PASS'} ABR ladder in ${playerName}: ${failures.length ? failures.join('; ') : notes.join('; ')} -> ${outDir}`);
  if (failures.length && notes.length) console.log('notes: ' + notes.join('; '));
  for (const x of knownFailures) console.log("  KNOWN (LLHLS_PLAYER_KNOWN: the player's own ABR, README player notes): " + x);
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 150 s'); finish(1); }, 150000).unref();

const notLive = await stream.live();
if (notLive) { failures.push(notLive); await finish(1); }
const multivariant = stream.multivariant;
// Each video rendition's media playlist by picture height, from the multivariant playlist.
const playlistOf = new Map([...multivariant.matchAll(/RESOLUTION=\d+x(\d+)[^\n]*\n([^\n#]+)/g)].map(m => [Number(m[1]), m[2].trim()]));

browser = await launchChromium();
const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
// --player-debug: hls.js with debug: true (the page's own config plus that), its log in
// player-console.log.
if (flag('player-debug')) {
  await traceMediaSource(context);
}
// --stock-abr: the page's hls.js with its own ABR controller instead of the page's
// (src/player/index.html, partChainAbr), to measure what the page's controller changes.
if ((flag('player-debug') || flag('stock-abr')) && !shaka) {
  await context.addInitScript(({ debug, stock }) => {
    let h;
    Object.defineProperty(window, 'Hls', { configurable: true, get: () => h,
      set: (v) => { h = class extends v { constructor(config) {
        super({ ...config, ...(debug ? { debug: true } : {}), ...(stock ? { abrController: v.DefaultConfig.abrController } : {}) });
      } }; } });
  }, { debug: flag('player-debug'), stock: flag('stock-abr') });
  if (flag('stock-abr')) notes.push("hls.js's own ABR controller (--stock-abr)");
}
// --static-connection: navigator.connection stays as it was when the page loaded (its `change`
// events are not delivered), as on a link that gets slower without changing type: DevTools'
// throttle otherwise also changes what the Network Information API reports, which Shaka acts on
// at once (abr.useNetworkInformation), so its switch down is then not measured (README, player
// notes).
if (flag('static-connection')) {
  await context.addInitScript(() => {
    const c = navigator.connection;
    if (!c) return;
    const frozen = { downlink: c.downlink, effectiveType: c.effectiveType, rtt: c.rtt, saveData: c.saveData,
      type: c.type, onchange: null, addEventListener() {}, removeEventListener() {}, dispatchEvent() { return true; } };
    Object.defineProperty(Navigator.prototype, 'connection', { configurable: true, get: () => frozen });
  });
  notes.push('navigator.connection frozen (--static-connection)');
}
const page = await context.newPage();
// The viewer's link (Chromium's DevTools protocol, Network.emulateNetworkConditions, which
// limits the throughput the page sees: a 37 kB response takes 200 ms at 1.4 Mbit/s, first
// byte after 34 ms): unlimited, then throttled in step 3 to a bandwidth below the top
// rendition, then unlimited again.
const cdp = await context.newCDPSession(page);
await cdp.send('Network.enable');
const setLink = (bps) => cdp.send('Network.emulateNetworkConditions', bps
  ? { offline: false, latency: 20, downloadThroughput: bps / 8, uploadThroughput: 1e6 }
  : { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
if (flag('player-debug')) page.on('console', m => playerConsole.push(`${Date.now()} ${m.type()} ${m.text()}`));
const pageErrors = [], requests = [];
page.on('pageerror', e => pageErrors.push(String(e)));
page.on('request', r => requests.push({ t: Date.now(), url: r.url(), req: r }));
// When each request ended and how, for the report: which request was slow when it stalled.
const ended = (r, how) => { const x = requests.find(q => q.req === r); if (x) { x.end = Date.now(); x.how = how; } };
page.on('requestfinished', async r => ended(r, (await r.response().catch(() => null))?.status() ?? 'no response'));
page.on('requestfailed', r => ended(r, r.failure()?.errorText || 'failed'));
if (shaka) {
  pages = await servePlayerPages({ shakaDebug: flag('player-debug') });
  const shakaConfig = opt('shaka-config', '');
  if (shakaConfig) notes.push(`Shaka configured with ${shakaConfig}`);
  if (shakaAbr) notes.push(`Shaka with abrFactory ${shakaAbr}`);
  await page.goto(`http://127.0.0.1:${pages.port}/?n=1&player=shaka&src=${encodeURIComponent(`${origin}/live/abr/index.m3u8`)}${shakaConfig ? `&shakaConfig=${encodeURIComponent(shakaConfig)}` : ''}${shakaAbr ? `&shakaAbr=${shakaAbr}` : ''}`);
} else {
  await page.goto(`${origin}/#/live/abr/index.m3u8`);
}
// The player behind one interface, in the page: window.__p.
await page.waitForFunction((shaka) => shaka ? players[0]?.shaka?.getVariantTracks().length : typeof hls !== 'undefined' && hls?.levels.length, shaka, { timeout: 30000 })
  .catch(() => {});
await exposePlayer(page, shaka);
const state = () => page.evaluate((shaka) => ({
  t: Date.now(),
  time: __p.video.currentTime,
  height: __p.height(),
  heights: __p.heights(),
  fatal: __p.fatal(),
  ...(shaka ? {} : {
    level: hls ? hls.currentLevel : -2,
    stats: document.querySelector('#stats').textContent,
    options: [...document.querySelectorAll('#quality option')].map(o => o.textContent),
    pickerShown: !document.querySelector('#qualitylabel').hidden,
  }),
}), shaka);
let s = await state();
for (let i = 0; i < 150 && s.time < 2; i++) { await sleep(200); s = await state(); }
if (s.time < 2) { failures.push(`not playing: ${JSON.stringify(s)}`); await finish(1); }
if (!shaka) for (let i = 0; i < 50 && !/rendition \d+p/.test(s.stats); i++) { await sleep(200); s = await state(); }
await page.evaluate(() => {
  // Every wait for data after playback started, with where the playhead and the buffer were.
  window.__waiting = [];
  const video = __p.video;
  video.addEventListener('waiting', () => {
    const b = video.buffered, ranges = [];
    for (let i = 0; i < b.length; i++) ranges.push([b.start(i).toFixed(3), b.end(i).toFixed(3)]);
    window.__waiting.push({ t: Date.now(), currentTime: video.currentTime.toFixed(3), buffered: ranges,
      seeking: video.seeking, readyState: video.readyState, level: __p.height(), loadLevel: __p.loading() });
  });
  window.__switches = [];
  __p.onSwitch(h => window.__switches.push([Date.now(), h]));
  // The player's bandwidth estimate (bit/s) four times a second, for the report.
  window.__estimates = [];
  // and the video's dropped and total frames (Shaka bans a rendition for 30 s when more than 15%
  // of its frames drop within 2 s: abr.droppedFrames).
  setInterval(() => {
    const q = __p.video.getVideoPlaybackQuality();
    window.__estimates.push([Date.now(), Math.round(__p.estimate()), q.droppedVideoFrames, q.totalVideoFrames]);
  }, 250);
});
await page.screenshot({ path: join(outDir, '1-auto.png') });
for (const h of [480, 360, 240]) if (!s.heights.includes(h)) failures.push(`no ${h}-line rendition: ${JSON.stringify(s.heights)}`);

// The player's latency, averaged over 3 s, on the rendition playing.
const latency = async () => {
  let sum = 0;
  for (let i = 0; i < 6; i++) { sum += await page.evaluate(() => __p.latency()); await sleep(500); }
  return (sum / 6).toFixed(2);
};
const levelNow = async () => page.evaluate(() => __p.height());
notes.push(`latency ${await latency()} s on ${await levelNow()}p (auto)`);

let pickedAt = Date.now();
if (!shaka) {
  // 1. The picker and the stats line.
  if (!s.pickerShown) failures.push('the quality picker is hidden');
  if (s.options.length !== 4 || s.options[0] !== 'auto') failures.push(`picker options: ${JSON.stringify(s.options)}`);
  if (!/rendition \d+p \d+ kbit\/s \(auto\)/.test(s.stats)) failures.push(`stats do not name the rendition: "${s.stats}"`);

  // 2. Pick 240p.
  const i240 = s.heights.indexOf(240);
  pickedAt = Date.now();
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
  await page.selectOption('#quality', '-1');
}

// 3. Auto on the top rendition, then throttled, then not.
const top = Math.max(...s.heights);
for (let i = 0; i < 100 && (await levelNow()) !== top; i++) await sleep(300);
// Shaka's own estimator times held part requests from before fetch() and ignores downloads
// under 16 kB, so it can sit one rung below at 1.8 Mbit/s measured on loopback (a CI run);
// `abr-shaka-up` reports that miss as KNOWN for Shaka's own ABR. Shaka also bans a rendition for
// 30 s when more than 15% of frames drop in 2 s (abr.droppedFrames): the dropped frames are in
// the notes.
if ((await levelNow()) !== top) ((shaka && knownOpen.has('abr-shaka-up')) ? knownFailures : failures).push(`${playerName} never played the top rendition (${top}p) on auto within 30 s`);
await sleep(4000);
// hls.js: the throttle starts from the live edge. After an earlier stall (reported below) hls.js
// plays on seconds behind its target latency, and never catches up by itself (README, player
// notes). With that much buffer it keeps loading the top rendition's parts back to back, each
// chain of parts counting as one download for its bandwidth estimate and its emergency
// switch-down check (`AbrController`: one sample per FRAG_BUFFERED, `_abandonRulesCheck` on
// the chain's first part only), so it took 24 to over 30 s to switch down, and it ran dry before
// it did. That is a viewer behind live, a case of its own; this step is about a low-latency
// viewer losing bandwidth. The seek is what the page's "Back to live" button does.
if (!shaka) {
  const lag = await page.evaluate(() => ({ latency: hls.latency, target: hls.targetLatency }));
  if (lag.latency - lag.target > 1) {
    await page.evaluate(() => { video.currentTime = hls.liveSyncPosition; });
    notes.push(`${lag.latency.toFixed(1)} s behind live before the throttle (target ${lag.target.toFixed(1)} s): moved to the live edge`);
    for (let i = 0; i < 100 && (await levelNow()) !== top; i++) await sleep(300);
    await sleep(3000);
  }
}
// How long the bandwidth stays throttled (at least until the switch down).
const throttleHoldMs = 15000;
// The throttled bandwidth: below the top rendition (the source, about 1.64 Mbit/s peak
// BANDWIDTH with audio) and above 360p (about 0.86 Mbit/s). A low-latency player holds about
// 1 s of media, which lasts buffer x rate / (rate - bandwidth) once the bandwidth drops below
// the rendition playing: 3.7 s at 1.2 Mbit/s, where hls.js 1.7 took 1.6 to 3.9 s to switch
// down and so stalled about one run in two while still on the top rung; 6.8 s at 1.4 Mbit/s
// in theory, but the buffer at the drop is often shorter and the 20 ms per request adds up
// over four requests per part: hls.js still stalled in 2 of 5 runs.
const throttleBps = 1.4e6;
const estimateNow = async () => ((await page.evaluate(() => __p.estimate())) / 1e6).toFixed(2);
notes.push(`estimate ${await estimateNow()} Mbit/s before the throttle`);
const throttledAt = Date.now();
await setLink(throttleBps);
// Already below the top (Shaka that never climbed there, `abr-shaka-up` above): it plays a
// rendition that fits the throttled link without a switch.
const levelAtThrottle = await levelNow();
let down = levelAtThrottle && levelAtThrottle < top ? [throttledAt, levelAtThrottle] : null;
if (down) notes.push(`already on ${levelAtThrottle}p when throttled`);
for (let i = 0; i < 100 && !down; i++) {
  await sleep(300);
  const sw = await page.evaluate(() => window.__switches);
  down = sw.find(([t, h]) => t >= throttledAt && h < top);
}
await page.screenshot({ path: join(outDir, '3-throttled.png') });
if (!down) failures.push(`throttled to ${throttleBps / 1e6} Mbit/s, ${playerName} did not switch down within 30 s`);
else notes.push(`throttled: down to ${down[1]}p after ${((down[0] - throttledAt) / 1000).toFixed(1)} s`);
// Stay throttled a while: playing on the lower rung at this bandwidth must not stall either.
await sleep(Math.max(0, throttledAt + throttleHoldMs - Date.now()));
const throttledHeight = await levelNow();
notes.push(`${throttledHeight}p after ${throttleHoldMs / 1000} s throttled`);
notes.push(`estimate ${await estimateNow()} Mbit/s throttled`);
const freedAt = Date.now();
await setLink(0);
// Back up: on the top rendition again (Shaka may have gone back to it while throttled: its
// estimate from small parts swings), through a switch after the throttle when it was below.
let up = null;
for (let i = 0; i < 150 && !up; i++) {
  await sleep(300);
  const sw = await page.evaluate(() => window.__switches);
  const h = await levelNow();
  up = h === top && (throttledHeight === top ? [freedAt, top] : sw.find(([t, x]) => t >= freedAt && x === top));
}
await page.screenshot({ path: join(outDir, '4-unthrottled.png') });
// Shaka 5.2's own estimator (above) climbs back slowly: 24-42 s in the runs that did (README,
// player notes); `abr-shaka-up` reports its miss as KNOWN.
if (!up) ((playerName === 'Shaka' && knownOpen.has('abr-shaka-up')) ? knownFailures : failures).push(`unthrottled, ${playerName} did not switch back up to ${top}p within 45 s`);
else notes.push(`unthrottled: ${throttledHeight === top ? 'still' : 'up to'} ${top}p${throttledHeight === top ? '' : ` after ${((up[0] - freedAt) / 1000).toFixed(1)} s`}`);
// A few seconds on the higher rung, for a stall after the switch up.
await sleep(5000);
const switches = await page.evaluate(() => window.__switches);
const waiting = await page.evaluate(() => window.__waiting);
s = await state();
if (s.fatal) failures.push(`fatal error: ${s.fatal}`);
if (pageErrors.length) failures.push(`page errors: ${pageErrors.join(' | ')}`);
const phase = (t) => t < pickedAt ? 'auto' : t < throttledAt ? (shaka ? 'auto' : 'picked 240p/auto') : t < freedAt ? 'throttled' : 'unthrottled';
notes.push(`${switches.length} switches (${switches.map(x => x[1] + 'p').join(' ')})`);

// Parts fetched in each phase: the switches are in what the player downloaded, too.
const partsOf = (h, from, to) => requests.filter(r => r.t >= from && r.t < to && r.url.includes(`/live/abr/${playlistOf.get(h)?.replace('.m3u8', '')}/`) && /\.\d+\.m4s/.test(r.url)).length;
if (down && !partsOf(down[1], throttledAt, freedAt)) failures.push(`no ${down[1]}p part fetched while throttled`);
if (up && !partsOf(up[1], freedAt, Date.now())) failures.push(`no ${up[1]}p part fetched after the throttle`);

// 4. Media playlist requests from the throttle on. hls.js: the first one for each rendition it
// moves to blocks (_HLS_msn), built from the rendition report of the playlist it leaves. Shaka: on a switch it loads the new rendition's playlist plainly
// (a request without _HLS_msn: HlsParser's createSegmentIndex), then blocks on its updates.
const videoPlaylists = [...playlistOf.values()];
const playlistRequests = requests.filter(r => r.t >= throttledAt)
  .map(r => ({ ...r, name: new URL(r.url).pathname.split('/').pop(), blocking: /_HLS_msn=\d+/.test(r.url) }))
  .filter(r => videoPlaylists.includes(r.name));
const short = (r) => r.url.split('/').pop();
const plain = playlistRequests.filter(r => !r.blocking);
const moves = playlistRequests.filter((r, i) => i > 0 && r.name !== playlistRequests[i - 1].name);
if (!shaka) {
  // The first request for each rendition it moves to must block. A later plain reload is
  // hls.js's own choice when its playlist is stale (seen on a loaded machine, behind by
  // seconds: `240p.m3u8?_HLS_skip=YES`), which the protocol allows: counted, not failed.
  const plainMoves = moves.filter(r => !r.blocking);
  if (plainMoves.length) failures.push(`${plainMoves.length} switch(es) began with a playlist request that did not block: ${plainMoves.slice(0, 5).map(short).join(', ')}`);
  notes.push(`first playlist request after each switch: ${moves.map(short).join(', ')}`);
  if (plain.length) notes.push(`${plain.length} later plain reload(s): ${plain.slice(0, 3).map(short).join(', ')}`);
} else {
  const switchedAfter = switches.filter(([t]) => t >= throttledAt).length;
  if (switchedAfter && !plain.length) failures.push('Shaka switched without a plain playlist load (does it read rendition reports now? update the README\'s player notes)');
  for (const r of plain) {
    const next = playlistRequests.find(q => q.t > r.t && q.name === r.name);
    if (next && !next.blocking) failures.push(`Shaka's update after loading ${r.name} did not block: ${short(next)}`);
  }
  notes.push(`${plain.length} plain playlist loads (${plain.map(r => r.name).join(' ')}), ${playlistRequests.length - plain.length} blocking`);
}

const since = (t) => ((t - (t < pickedAt ? 0 : t < throttledAt ? pickedAt : t < freedAt ? throttledAt : freedAt)) / 1000).toFixed(1);
const quality = await page.evaluate(() => { const q = __p.video.getVideoPlaybackQuality(); return { dropped: q.droppedVideoFrames, total: q.totalVideoFrames }; });
// 2 s windows in which more than 15% of the frames dropped (what Shaka's abr.droppedFrames bans a
// rendition for), from the samples taken four times a second.
const estimates = await page.evaluate(() => window.__estimates);
const dropWindows = estimates.filter((e, i, a) => i >= 8 && e[3] - a[i - 8][3] > 0
  && (e[2] - a[i - 8][2]) / (e[3] - a[i - 8][3]) >= 0.15 && !(i >= 9 && (a[i - 1][2] - a[i - 9][2]) / Math.max(1, a[i - 1][3] - a[i - 9][3]) >= 0.15));
notes.push(`${quality.dropped} of ${quality.total} frames dropped${dropWindows.length ? `, more than 15% within 2 s at ${dropWindows.map(e => `${phase(e[0])}${e[0] >= pickedAt ? ` +${since(e[0])} s` : ''}`).join(', ')}` : ''}`);
// A wait for data after playback started is a stall, whatever the phase.
if (waiting.length) {
  (knownOpen.has('abr-stalls') ? knownFailures : failures).push(`${waiting.length} stall(s) ("waiting"): ${waiting.map(w => `${phase(w.t)}${w.t >= pickedAt ? ' +' + since(w.t) + ' s' : ''} at ${w.currentTime} on ${w.level}p (loading ${w.loadLevel}p), buffered ${JSON.stringify(w.buffered)}${w.seeking ? ', seeking' : ''}`).join('; ')}`);
} else notes.push('0 stalls');
// Every request with its start and end (ms after the pick) and status, for a look at a failure.
writeFileSync(join(outDir, 'requests.json'), JSON.stringify({ pickedAt, throttledAt, freedAt, waiting: waiting.map(w => ({ ...w, t: w.t - pickedAt })),
  estimates: estimates.map(([t, ...rest]) => [t - pickedAt, ...rest]),
  switches: switches.map(([t, h]) => [t - pickedAt, h]),
  requests: requests.map(r => ({ t: r.t - pickedAt, ms: r.end ? r.end - r.t : null, status: r.how, url: r.url.replace(origin, '') })) }, null, 1));
await finish();
