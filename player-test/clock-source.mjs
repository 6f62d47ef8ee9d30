#!/usr/bin/env node
// A live camera stand-in for the RTMP publisher: raw frames that carry the wall clock as a
// barcode, fed to ffmpeg (x264 zerolatency + AAC over RTMP, or in MPEG-TS over SRT) in real time.
//
//   node player-test/clock-source.mjs --rtmp rtmp://127.0.0.1:PORT/live/test [--size 1280x720]
//   node player-test/clock-source.mjs --srt 'srt://127.0.0.1:PORT?streamid=publish:live/test'
//
// Each frame is drawn when it is captured, paced on the wall clock (30 fps), with Date.now()
// at that instant as its barcode (the same code as publish.html's canvas source, scaled from
// 640x360: 24 blocks, most significant bit first, read back by page.html). Audio is a 440 Hz
// sine, 1600 samples per frame, written with each frame.
//
// When ffmpeg stops reading (SIGSTOP, a stalled network), capturing goes on: frames keep their
// capture time and queue up in this process, and ffmpeg encodes and sends the backlog as a
// burst when it resumes, as OBS does after a network hiccup. Prints `ffmpeg-pid N` first.
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : def; };
const rtmp = opt('rtmp');
const srt = opt('srt');
const out = rtmp ? ['-f', 'flv', rtmp] : ['-f', 'mpegts', srt];
const [W, H] = opt('size', '1280x720').split('x').map(Number);
const bitrate = opt('bitrate', '2500k');
if (!(rtmp || srt) || W % 16 || H % 8) throw new Error('usage: clock-source.mjs --rtmp URL | --srt URL [--size WxH, W multiple of 16]');
const FPS = 30, RATE = 48000, SPF = RATE / FPS;
const MAX_QUEUE = 60 * FPS; // a minute of backlog at most, then the capture gives up (exit 3)

const ff = spawn('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin',
  '-probesize', '32', '-analyzeduration', '0', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${W}x${H}`, '-framerate', String(FPS), '-thread_queue_size', '64', '-i', 'pipe:0',
  '-probesize', '32', '-analyzeduration', '0', '-f', 's16le', '-ar', String(RATE), '-ac', '1', '-thread_queue_size', '64', '-i', 'pipe:3',
  '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30', '-sc_threshold', '0',
  '-pix_fmt', 'yuv420p', '-b:v', bitrate, '-c:a', 'aac', '-b:a', '96k', '-ac', '2', ...out],
{ stdio: ['pipe', 'inherit', 'inherit', 'pipe'] });
const audioOut = ff.stdio[3];
console.log(`ffmpeg-pid ${ff.pid}`);
ff.stdin.on('error', () => {}); audioOut.on('error', () => {});
ff.on('exit', (code, sig) => { console.log(`ffmpeg exited ${code ?? sig}`); process.exit(code === 0 ? 0 : 1); });
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { ff.kill('SIGINT'); setTimeout(() => process.exit(0), 2000); });

// The picture: dark grey, a moving block, the barcode on a black strip (publish.html's layout x k).
const k = W / 640;
const ySize = W * H, frameSize = ySize * 3 / 2;
const base = Buffer.alloc(frameSize, 128);
base.fill(32, 0, ySize);
const BITS = 24, BLOCK = Math.round(20 * k), PITCH = Math.round(24 * k), X0 = Math.round(20 * k), BAR_Y = Math.round(300 * k);
const rect = (buf, x, y, w, h, v) => { for (let r = y; r < y + h; r++) buf.fill(v, r * W + x, r * W + x + w); };
function draw(now) {
  const f = Buffer.from(base);
  const bw = Math.round(60 * k);
  rect(f, Math.round((now / 5 * k) % (W - bw)), Math.round(100 * k), bw, bw, 170);
  rect(f, 0, BAR_Y - Math.round(10 * k), W, BLOCK + Math.round(20 * k), 16);
  const code = now % (1 << BITS);
  for (let i = 0; i < BITS; i++) if ((code >> (BITS - 1 - i)) & 1) rect(f, X0 + i * PITCH, BAR_Y, BLOCK, BLOCK, 235);
  return f;
}
const sine = Buffer.alloc(RATE * 2);
for (let i = 0; i < RATE; i++) sine.writeInt16LE(Math.round(0.3 * 32767 * Math.sin(2 * Math.PI * 440 * i / RATE)), i * 2);

// Writes never block this loop: a stopped ffmpeg leaves the frames queued in the streams'
// buffers (the backlog), in capture order, each already stamped.
// ffmpeg takes about a second to start (x264, the RTMP connection) before it reads. Until it
// has once taken (nearly) every frame written, a frame is captured only when nothing waits (a camera
// whose frames are dropped before the encoder runs), so the stream does not start with a
// burst of late frames; from then on every frame is captured, and queued when ffmpeg stalls.
const t0 = performance.now();
let n = 0, written = 0, maxQueued = 0, started = false;
function tick() {
  while (performance.now() >= t0 + n * 1000 / FPS) {
    const waiting = ff.stdin.writableLength;
    // (Less than a frame waiting: the rest of the last one, which does not fit the pipe.)
    if (!started && waiting < frameSize && written >= FPS) { started = true; console.log(`capturing every frame from frame ${n}`); }
    if (started || waiting < frameSize) {
      ff.stdin.write(draw(Date.now()));
      audioOut.write(sine.subarray((written % FPS) * SPF * 2, ((written % FPS) + 1) * SPF * 2));
      written++;
    }
    n++;
    const queued = Math.floor(ff.stdin.writableLength / frameSize);
    if (queued > maxQueued) maxQueued = queued;
    if (queued > MAX_QUEUE) { console.log(`backlog above ${MAX_QUEUE} frames, giving up`); ff.kill('SIGKILL'); process.exit(3); }
  }
  setTimeout(tick, Math.max(0, t0 + n * 1000 / FPS - performance.now()));
}
tick();
setInterval(() => console.log(`frames ${n} backlog ${Math.floor(ff.stdin.writableLength / frameSize)} max-backlog ${maxQueued}`), 5000);
