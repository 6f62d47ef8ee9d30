// Probe (investigation, not a test): what Chromium's media pipeline says about its audio
// output while hls.js plays a stream. Prints the DevTools Media domain's properties and
// messages, AudioContext's latencies, and every second how far the buffered end is ahead of
// currentTime.
//   node player-test/audio-probe.mjs --src http://127.0.0.1:PORT/live/s0/index.m3u8 [--secs 20]
import { opt, sleep, launchChromium, servePlayerPages } from './common.mjs';
const src = opt('src');
const secs = Number(opt('secs', '20'));
// --stop-pid PID: SIGSTOP that process (the server) at --stop-at s for --stop-secs s, so the
// buffer drains and the page records how much was buffered ahead when Chromium gave up.
const stopPid = Number(opt('stop-pid', '0')), stopAt = Number(opt('stop-at', '10')), stopSecs = Number(opt('stop-secs', '3'));
const { port, server } = await servePlayerPages();
const browser = await launchChromium();
const context = await browser.newContext();
const page = await context.newPage();
const cdp = await context.newCDPSession(page);
const log = [];
cdp.on('Media.playerPropertiesChanged', e => { for (const p of e.properties) log.push(['property', p.name, p.value]); });
cdp.on('Media.playerMessagesLogged', e => { for (const m of e.messages) log.push(['message', m.level, m.message]); });
cdp.on('Media.playerEventsAdded', e => { for (const x of e.events) if (!x.value.includes('kDurationChanged')) log.push(['event', x.value]); });
await cdp.send('Media.enable');
await page.goto(`http://127.0.0.1:${port}/?n=1&player=hlsjs&src=${encodeURIComponent(src)}`);
const ctxLat = await page.evaluate(async () => {
  const a = new AudioContext({ latencyHint: 'playback' });
  const b = new AudioContext();
  await new Promise(r => setTimeout(r, 500));
  return { playback: { base: a.baseLatency, output: a.outputLatency, rate: a.sampleRate }, interactive: { base: b.baseLatency, output: b.outputLatency } };
});
console.log('AudioContext', JSON.stringify(ctxLat));
await page.evaluate(() => {
  const v = document.querySelector('video');
  window.__waits = [];
  v.addEventListener('waiting', () => { const b = v.buffered; const end = b.length ? b.end(b.length - 1) : null; window.__waits.push({ at: Date.now(), ct: v.currentTime, end, ahead: end === null ? null : end - v.currentTime, rs: v.readyState }); });
});
if (stopPid) setTimeout(() => { console.log('SIGSTOP', Date.now()); process.kill(stopPid, 'SIGSTOP'); setTimeout(() => { process.kill(stopPid, 'SIGCONT'); console.log('SIGCONT', Date.now()); }, stopSecs * 1000); }, stopAt * 1000);
for (let i = 0; i < secs; i++) {
  await sleep(1000);
  const s = await page.evaluate(() => { const v = document.querySelector('video'); const b = v.buffered; return { ct: v.currentTime, end: b.length ? b.end(b.length - 1) : null, rs: v.readyState, audio: v.webkitAudioDecodedByteCount, rate: v.playbackRate }; });
  console.log(JSON.stringify({ ...s, ahead: s.end === null ? null : Number((s.end - s.ct).toFixed(3)) }));
}
console.log('waits', JSON.stringify(await page.evaluate(() => window.__waits)));
for (const l of log) if (/BUFFERING|underflow|delay|splice|gap/i.test(l.join(' '))) console.log(JSON.stringify(l).slice(0, 400));
await browser.close();
server.close();
