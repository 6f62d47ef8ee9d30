#!/usr/bin/env node
// How late the server publishes each part, against the media's own dates: follows a live media
// playlist with blocking reloads (the next part each time, as an LL-HLS player does) and, for
// every new part, takes the wall clock at the response minus the end of the newest part by the
// playlist's EXT-X-PROGRAM-DATE-TIME (its segment's date plus the part DURATIONs before it).
// That is the time from the media's last instant to its part being listed, as a player at the
// edge sees it (the next frame's arrival closes a part; delivery is on loopback).
//
//   node benches/part-lag.mjs http://127.0.0.1:8080/live/test [SECONDS]
//
// with a publisher on live/test (e.g. `node player-test/clock-source.mjs --rtmp
// rtmp://127.0.0.1:1935/live/test`, which dates frames on the wall clock). Prints p10/p50/p90/
// max in milliseconds. The stream must be muxed (`media.m3u8`).
const base = process.argv[2]; const secs = Number(process.argv[3] || 20);
if (!base) throw new Error('usage: part-lag.mjs STREAM-URL [SECONDS]');
function parse(text) {
  let cur = null, seg = 0, parts = [], lastMsn = null, lastPart = -1;
  let idx = Number((text.match(/#EXT-X-MEDIA-SEQUENCE:(\d+)/) || [])[1]), pidx = 0;
  for (const l of text.split('\n')) {
    if (l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) cur = Date.parse(l.slice(25));
    else if (l.startsWith('#EXTINF:')) seg = parseFloat(l.slice(8)) * 1000;
    else if (l.startsWith('#EXT-X-PART:')) { const m = l.match(/DURATION=([\d.]+)/); parts.push(parseFloat(m[1]) * 1000); lastMsn = idx; lastPart = pidx++; }
    else if (l.startsWith('#EXT-X-SKIP')) { idx += Number(l.match(/SKIPPED-SEGMENTS=(\d+)/)[1]); }
    else if (l && !l.startsWith('#')) { if (cur !== null) cur += seg; seg = 0; parts = []; idx++; pidx = 0; }
  }
  return { end: cur === null ? null : cur + parts.reduce((a, b) => a + b, 0), lastMsn, lastPart };
}
const url = `${base}/media.m3u8`;
let r = parse(await (await fetch(url)).text());
const lags = []; const t0 = Date.now();
while (Date.now() - t0 < secs * 1000) {
  const nextMsn = r.lastMsn, nextPart = r.lastPart + 1;
  const text = await (await fetch(`${url}?_HLS_msn=${nextMsn}&_HLS_part=${nextPart}`)).text();
  const now = Date.now();
  const p = parse(text);
  if (p.lastMsn !== r.lastMsn || p.lastPart !== r.lastPart) lags.push(now - p.end);
  r = p;
}
lags.sort((a, b) => a - b);
const q = f => Math.round(lags[Math.floor(f * (lags.length - 1))]);
console.log(`parts ${lags.length} lag ms p10 ${q(0.1)} p50 ${q(0.5)} p90 ${q(0.9)} max ${q(1)}`);
