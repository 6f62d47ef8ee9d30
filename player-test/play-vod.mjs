#!/usr/bin/env node
// Plays a packaged directory (llhls package output), or a VOD playlist URL (a recording on a
// running llhls: http://HOST/recordings/NAME/START/index.m3u8), to the end in hls.js (headless
// Chromium), or in Chromium's own HLS player (--player native, <video src=...m3u8>). Exits
// non-zero on a fatal error, if playback does not reach the end, or (--expect-secs S) if the
// duration the player reports is more than half a second from S (a clip's length).
//   node player-test/play-vod.mjs DIR|URL [--player hlsjs|native] [--expect-secs S]
import { createServer } from 'node:http';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { join, resolve, dirname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const opt = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };
const arg = process.argv[2] || '.';
const player = opt('player', 'hlsjs');
if (!['hlsjs', 'native'].includes(player)) throw new Error(`unknown --player ${player}`);
const expectSecs = opt('expect-secs', null);
const remote = /^https?:\/\//.test(arg);
const dir = remote ? arg : resolve(arg);
const source = remote ? arg : '/index.m3u8';
const types = { m3u8: 'application/vnd.apple.mpegurl', mp4: 'video/mp4', m4s: 'video/mp4' };
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(`<!doctype html><video id=v muted autoplay></video><script src="/hls.js"></script><script>
      const v = document.getElementById('v'); window.__r = { ended: false, fatal: null, duration: 0, t: 0 };
      if (${JSON.stringify(player)} === 'native') {
        v.addEventListener('error', () => window.__r.fatal = 'MediaError ' + (v.error && v.error.code) + ' ' + (v.error && v.error.message));
        v.src = ${JSON.stringify(source)};
      } else {
        const hls = new Hls(); hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.__r.fatal = d.details; });
        hls.loadSource(${JSON.stringify(source)}); hls.attachMedia(v);
      }
      v.playbackRate = 4; v.play().catch(() => {});
      v.addEventListener('loadedmetadata', () => v.playbackRate = 4);
      v.addEventListener('ended', () => window.__r.ended = true);
      setInterval(() => { window.__r.t = v.currentTime; window.__r.duration = v.duration; }, 200);
    </script>`);
  }
  if (url.pathname === '/hls.js') {
    res.writeHead(200, { 'content-type': 'application/javascript' });
    return res.end(readFileSync(join(here, 'node_modules/hls.js/dist/hls.min.js')));
  }
  if (remote) { res.writeHead(404); return res.end(); }
  const file = normalize(join(dir, decodeURIComponent(url.pathname)));
  if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404); return res.end(); }
  const body = readFileSync(file);
  const type = types[file.split('.').pop()] || 'application/octet-stream';
  const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range || '');
  if (m) {
    const start = Number(m[1]); const end = m[2] ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
    res.writeHead(206, { 'content-type': type, 'content-range': `bytes ${start}-${end}/${body.length}` });
    return res.end(body.subarray(start, end + 1));
  }
  res.writeHead(200, { 'content-type': type }); res.end(body);
});
await new Promise(r => server.listen(0, '127.0.0.1', r));
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'] });
const page = await browser.newPage();
await page.goto(`http://127.0.0.1:${server.address().port}/`);
let r = null;
const end = Date.now() + 120000;
while (Date.now() < end) {
  r = await page.evaluate(() => window.__r);
  if (r.ended || r.fatal) break;
  await new Promise(x => setTimeout(x, 300));
}
await browser.close(); server.close();
const lengthOk = expectSecs === null || (r && Math.abs(r.duration - Number(expectSecs)) <= 0.5);
const ok = r && r.ended && !r.fatal && r.duration > 0 && lengthOk;
console.log(`${ok ? 'PASS' : 'FAIL'} ${dir} [${player}${expectSecs === null ? '' : ', expected ' + Number(expectSecs).toFixed(2) + ' s'}]: played ${r?.t?.toFixed(2)} of ${r?.duration?.toFixed(2)} s${r?.fatal ? ', fatal ' + r.fatal : ''}`);
process.exit(ok ? 0 : 1);
