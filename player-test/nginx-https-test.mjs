#!/usr/bin/env node
// scripts/nginx-https.conf as shipped (only its ports, certificate and folder swapped): nginx
// terminates TLS in front of `llhls serve` and serves `llhls package` output at /vod/.
// In headless Chromium over HTTPS:
//   1. the player page plays the demo stream through nginx (blocking reloads pass through);
//   2. /publish publishes the fake camera through nginx (WHIP offer over HTTPS, media over UDP
//      straight to llhls), and the stream shows up;
//   3. the packaged file plays from /vod/, and nginx answers its byte ranges with 206.
// Screenshots and logs go to player-test/out/nginx-https/.
//   node player-test/nginx-https-test.mjs [--llhls target/debug/llhls]
import { root, llhlsBin, outDirNamed, freePort, sleep } from './common.mjs';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const outDir = outDirNamed('nginx-https');
const tmp = mkdtempSync(join(tmpdir(), 'llhls-https-'));
const failures = [];
const procs = [];
let browser = null;
const run = (cmd, argv, logName) => {
  const chunks = [];
  const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
  p.stdout.on('data', d => chunks.push(d)); p.stderr.on('data', d => chunks.push(d));
  procs.push({ p, logName, chunks });
  return p;
};
const finish = async (code) => {
  try { if (browser) await browser.close(); } catch {}
  // SIGTERM: nginx's master stops its workers (SIGKILL would orphan them).
  await Promise.all(procs.map(({ p }) => new Promise(res => {
    if (p.exitCode !== null || p.signalCode !== null) return res();
    p.once('exit', res); p.kill('SIGTERM');
    setTimeout(() => { p.kill('SIGKILL'); res(); }, 5000).unref();
  })));
  for (const { logName, chunks } of procs) writeFileSync(join(outDir, logName), Buffer.concat(chunks));
  rmSync(tmp, { recursive: true, force: true });
  console.log(`${failures.length ? 'FAIL' : 'PASS'} nginx https: ${failures.length ? failures.join('; ') : 'live, WHIP and packaged files over HTTPS through scripts/nginx-https.conf'} -> ${outDir}`);
  process.exit(code ?? (failures.length ? 1 : 0));
};
setTimeout(() => { failures.push('timed out after 150 s'); finish(1); }, 150000).unref();

// A self-signed certificate, and a packaged file.
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
  '-keyout', join(tmp, 'llhls.key'), '-out', join(tmp, 'llhls.pem')], { stdio: 'ignore' });
const vod = join(tmp, 'vod');
execFileSync(llhlsBin, ['package', '--quiet', join(root, 'samples', 'media', 'demo.mp4'), vod], { stdio: 'inherit' });

const httpPort = await freePort(), rtmpPort = await freePort(), whipPort = await freePort(), tlsPort = await freePort();
run(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', `0.0.0.0:${whipPort}`, '--demo', 'true'], 'llhls.log');

const shipped = readFileSync(join(root, 'scripts', 'nginx-https.conf'), 'utf8');
const conf = shipped
  .replace('listen 443 ssl http2;', `listen 127.0.0.1:${tlsPort} ssl http2;`)
  .replace('/etc/ssl/certs/llhls.pem;', `${join(tmp, 'llhls.pem')};`)
  .replace('/etc/ssl/private/llhls.key;', `${join(tmp, 'llhls.key')};`)
  .replace('alias /srv/llhls-vod/;', `alias ${vod}/;`)
  .replace('proxy_pass http://127.0.0.1:8080;', `proxy_pass http://127.0.0.1:${httpPort};`);
for (const must of [`:${tlsPort} ssl`, 'llhls.pem', 'llhls.key', `alias ${vod}/`, `:${httpPort};`]) {
  if (!conf.includes(must)) { failures.push(`scripts/nginx-https.conf no longer has the line this test rewrites (${must})`); await finish(1); }
}
writeFileSync(join(tmp, 'llhls-https.conf'), conf);
writeFileSync(join(tmp, 'nginx.conf'), [
  'worker_processes 1;', 'daemon off;',
  ...(process.getuid && process.getuid() === 0 ? ['user root;'] : []),
  `pid ${tmp}/nginx.pid;`, `error_log ${tmp}/error.log warn;`,
  'events { worker_connections 1024; }',
  'http {', `  access_log ${tmp}/access.log;`,
  ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(t => `  ${t}_temp_path ${tmp}/${t}_temp;`),
  `  include ${join(tmp, 'llhls-https.conf')};`, '}', ''].join('\n'));
run('nginx', ['-c', join(tmp, 'nginx.conf'), '-p', tmp], 'nginx.log');
const base = `https://127.0.0.1:${tlsPort}`;

const { chromium } = await import('playwright-core');
browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
const context = await browser.newContext({ viewport: { width: 1000, height: 700 }, ignoreHTTPSErrors: true });
const page = await context.newPage();
const pageErrors = [];
context.on('page', p => p.on('pageerror', e => pageErrors.push(p.url() + ': ' + e)));
page.on('pageerror', e => pageErrors.push(String(e)));
const get = (path, headers = {}) => page.evaluate(async ([path, headers]) => {
  try { const r = await fetch(path, { headers, cache: 'no-store' }); return { status: r.status, text: await r.text(), range: r.headers.get('content-range') }; }
  catch (e) { return { status: 0, text: String(e) }; }
}, [path, headers]);

// Wait for nginx and the demo.
let ok = false;
for (let i = 0; i < 300 && !ok; i++) {
  try { await page.goto(`${base}/favicon.svg`); ok = (await get('/live/demo/index.m3u8')).status === 200; } catch {}
  if (!ok) await sleep(100);
}
if (!ok) { failures.push('the demo never answered through nginx'); await finish(1); }

const playFor = async (hash, shot) => {
  await page.goto(`${base}/#${hash}`);
  let t = 0;
  for (let i = 0; i < 100 && t < 2; i++) { await sleep(200); t = await page.$eval('#video', v => v.currentTime); }
  await page.screenshot({ path: join(outDir, shot) });
  return t;
};

// 1. Live through nginx over HTTPS.
const tLive = await playFor('/live/demo/index.m3u8', '1-live.png');
if (tLive < 2) failures.push(`the demo played ${tLive.toFixed(2)} s over HTTPS`);
// The demo's first variant (its source rendition: video.m3u8 beside the default ladder's rungs).
const variant = (await get('/live/demo/index.m3u8')).text.split('\n').find(l => l.endsWith('.m3u8'));
const media = (await get(`/live/demo/${variant}`)).text;
const open = [...media.matchAll(/#EXT-X-PART:.*URI="[a-z0-9]+\/(\d+)\.(\d+)\.m4s"/g)].pop();
if (open) {
  const [msn, part] = [Number(open[1]), Number(open[2])];
  const blocking = await get(`/live/demo/${variant}?_HLS_msn=${msn}&_HLS_part=${part + 1}`);
  if (blocking.status !== 200) failures.push(`a blocking reload through nginx answered ${blocking.status}`);
} else failures.push('no parts in the live playlist through nginx');

// 2. Browser publishing through nginx.
const pub = await context.newPage();
await pub.goto(`${base}/publish?name=tls`);
const warning = await pub.$eval('#warning', e => e.textContent);
if (warning) failures.push(`/publish over HTTPS warns: ${warning}`);
for (let i = 0; i < 50; i++) {
  if (await pub.$$eval('#camera option', os => os.some(o => o.value && o.value !== 'none'))) break;
  await sleep(100);
}
await pub.click('#start');
let state = {};
for (let i = 0; i < 100; i++) {
  state = await pub.evaluate(() => window.__pub);
  if (state.state.startsWith('publishing') || state.error) break;
  await sleep(200);
}
if (!state.state.startsWith('publishing')) failures.push(`/publish over HTTPS: "${state.state}" ${state.error || ''}`);
let listed = false;
for (let i = 0; i < 100 && !listed; i++) {
  listed = (await get('/streams.json')).text.includes('"name":"tls"') && (await get('/live/tls/index.m3u8')).status === 200;
  if (!listed) await sleep(200);
}
if (!listed) failures.push('the stream published over HTTPS never appeared');
await pub.screenshot({ path: join(outDir, '2-publish.png') });
await pub.click('#stop');

// 3. Packaged files: byte ranges (of a part when the playlist lists byte-range parts, else of
// a segment), and playback.
const vodMedia = (await get('/vod/media.m3u8')).text;
const br = vodMedia.match(/URI="([^"]+)",BYTERANGE="(\d+)@(\d+)"/);
const seg = vodMedia.split('\n').find(l => l.endsWith('.m4s'));
const [uri, off, end] = br ? [br[1], Number(br[3]), Number(br[3]) + Number(br[2]) - 1] : [seg, 100, 1099];
if (!uri) failures.push(`the packaged playlist lists no media: ${vodMedia.slice(0, 300)}`);
else {
  const r = await get(`/vod/${uri}`, { Range: `bytes=${off}-${end}` });
  if (r.status !== 206 || !String(r.range).startsWith(`bytes ${off}-${end}/`)) failures.push(`a byte range of ${uri} answered ${r.status} ${r.range}`);
}
const tVod = await playFor('/vod/index.m3u8', '3-vod.png');
if (tVod < 2) failures.push(`the packaged file played ${tVod.toFixed(2)} s from nginx`);

if (pageErrors.length) failures.push(`script errors: ${pageErrors.slice(0, 3).join(' | ')}`);
await finish();
