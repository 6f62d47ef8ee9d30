// What the player-test scripts share: their folders, command-line options, the llhls binary
// to test, free ports and sleeping.
import { mkdirSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

/** player-test/ and the repository root. */
export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..');

const args = process.argv.slice(2);
/** The value after `--NAME` on the command line, or `def`. */
export const opt = (name, def) => { const i = args.indexOf('--' + name); return i >= 0 ? args[i + 1] : def; };
/** Whether `--NAME` is on the command line. */
export const flag = (name) => args.includes('--' + name);
/** The llhls binary under test (`--llhls PATH`, default the debug build). */
export const llhlsBin = resolve(opt('llhls', join(root, 'target', 'debug', 'llhls')));

/** player-test/out/NAME, created. */
export function outDirNamed(name) {
  const dir = join(here, 'out', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () => new Promise((res, rej) => {
  const s = net.createServer(); s.unref(); s.on('error', rej);
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});

export const sleep = (ms) => new Promise(r => setTimeout(r, ms));
