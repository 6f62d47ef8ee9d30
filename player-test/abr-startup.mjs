#!/usr/bin/env node
// Start-up of hls.js 1.7.4 and Shaka 5.2 (lowLatencyMode, the test page page.html) on an ABR
// ladder (`llhls serve --ladder 360p,240p`, ffmpeg publishing 640x480 over RTMP) with the
// multivariant playlist's variants as llhls lists them (highest first) and reversed (lowest
// first, rewritten in the browser): time to first frame and the rendition of the first video
// part fetched, per load. Each load is a fresh browser context; the stream stays up between
// loads. Figures: benches/README.md (ABR).
//   node player-test/abr-startup.mjs [--runs 3] [--llhls target/debug/llhls]
import { root, llhlsBin, outDirNamed, freePort, sleep, opt, launchChromium, servePlayerPages } from './common.mjs';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const runs = Number(opt('runs', '3'));
const outDir = outDirNamed('abr-startup');
const httpPort = await freePort(), rtmpPort = await freePort();
const origin = `http://127.0.0.1:${httpPort}`;
const server = spawn(llhlsBin, ['serve', '--http', `127.0.0.1:${httpPort}`, '--rtmp', `127.0.0.1:${rtmpPort}`,
  '--whip-udp', 'off', '--demo', 'false', '--ladder', '360p,240p'], { stdio: 'ignore', cwd: root });
let ffmpeg = null;
const stop = () => { ffmpeg?.kill('SIGKILL'); server.kill('SIGKILL'); };
process.on('exit', stop);
for (let i = 0; !(await fetch(`${origin}/healthz`).then(r => r.ok, () => false)); i++) {
  if (i > 300) throw new Error('the server did not start');
  await sleep(100);
}
ffmpeg = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=30',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-c:v', 'libx264', '-preset', 'veryfast',
  '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-b:v', '1500k', '-pix_fmt', 'yuv420p',
  '-c:a', 'aac', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/abr`], { stdio: 'ignore' });
for (let i = 0; !(await fetch(`${origin}/live/abr/index.m3u8`).then(r => r.ok, () => false)); i++) {
  if (i > 300) throw new Error('the stream never went live');
  await sleep(100);
}
// A few segments, so that every rendition has a measured BANDWIDTH and a full window.
await sleep(8000);
const multivariant = await (await fetch(`${origin}/live/abr/index.m3u8`)).text();
const heightOf = new Map([...multivariant.matchAll(/RESOLUTION=\d+x(\d+)[^\n]*\n([^\n#]+)/g)].map(m => [m[2].trim().replace('.m3u8', ''), Number(m[1])]));
/** The multivariant playlist with its EXT-X-STREAM-INF entries in reverse order. */
const reversed = (text) => {
  const lines = text.trimEnd().split('\n');
  const head = [], variants = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#EXT-X-STREAM-INF')) { variants.push([lines[i], lines[i + 1]]); i++; } else head.push(lines[i]);
  }
  return [...head, ...variants.reverse().flat()].join('\n') + '\n';
};

const pages = await servePlayerPages();
const browser = await launchChromium();
const src = `${origin}/live/abr/index.m3u8`;
const results = [];
for (let run = 0; run < runs; run++) {
  for (const player of ['hlsjs', 'shaka']) {
    for (const order of ['highest-first', 'lowest-first']) {
      const context = await browser.newContext({ viewport: { width: 640, height: 360 } });
      const page = await context.newPage();
      if (order === 'lowest-first') {
        await page.route(src, async route => {
          const r = await route.fetch();
          await route.fulfill({ response: r, body: reversed(await r.text()) });
        });
      }
      let firstPart = null;
      page.on('request', r => {
        const m = r.url().match(/\/live\/abr\/([^/]+)\/\d+\.\d+\.m4s/);
        if (!firstPart && m && m[1] !== 'audio') firstPart = m[1];
      });
      await page.goto(`http://127.0.0.1:${pages.port}/?n=1&player=${player}&src=${encodeURIComponent(src)}`);
      let st = null;
      for (let i = 0; i < 100; i++) {
        await sleep(100);
        st = (await page.evaluate(() => window.__stats?.()))?.[0];
        if (st?.firstFrameMs !== null && st?.firstFrameMs !== undefined) break;
      }
      const row = { run: run + 1, player, order, firstFrameMs: st?.firstFrameMs === null || st?.firstFrameMs === undefined ? null : Math.round(st.firstFrameMs),
        firstPartHeight: heightOf.get(firstPart) ?? null, fatal: st?.fatal ?? null };
      results.push(row);
      console.log(JSON.stringify(row));
      await context.close();
    }
  }
}
await browser.close();
pages.server.close();
writeFileSync(join(outDir, 'results.json'), JSON.stringify({ multivariant, results }, null, 1));
for (const player of ['hlsjs', 'shaka']) {
  for (const order of ['highest-first', 'lowest-first']) {
    const rs = results.filter(r => r.player === player && r.order === order);
    const ff = rs.map(r => r.firstFrameMs).filter(x => x !== null).sort((a, b) => a - b);
    console.log(`${player} ${order}: first frame ${rs.map(r => r.firstFrameMs ?? 'never').join(', ')} ms (median ${ff[Math.floor(ff.length / 2)] ?? 'n/a'}), first part ${rs.map(r => r.firstPartHeight + 'p').join(', ')}`);
  }
}
process.exit(results.some(r => r.firstFrameMs === null || r.fatal) ? 1 : 0);
