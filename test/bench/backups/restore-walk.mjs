// The restore's progress look at its staging directory (host-agent/src/backups/index.ts, sizeOf):
// a walk of every file, again and again while restic writes. A: the next walk 250 ms after the
// last ended (as merged in backup24); B: after max(250 ms, 9 × the last walk's time). Measured:
// how long a writer beside it (a child making files, as restic does) takes, how many walks ran and
// their share of the time. A tree of FILES files stands for a staging directory well along.
// Alternating rounds A, B, A, B, … on this machine. Run: node test/bench/backups/restore-walk.mjs
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The agent's own walk (built: npm run build).
import { sizeOf } from '../../../host-agent/dist/backups/index.js';

const FILES = Number(process.env.FILES ?? 200_000);
const WRITES = Number(process.env.WRITES ?? 60_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

const root = mkdtempSync(join(tmpdir(), 'restore-walk-'));
const tree = join(root, 'staging');
for (let d = 0; d < FILES / 100; d += 1) {
  mkdirSync(join(tree, String(d)), { recursive: true });
  for (let f = 0; f < 100; f += 1) writeFileSync(join(tree, String(d), `f${f}`), 'x');
}

const writer = `const fs=require('fs'),p=require('path');const dir=process.argv[1];
for(let d=0;d<${WRITES}/100;d++){fs.mkdirSync(p.join(dir,String(d)),{recursive:true});
for(let f=0;f<100;f++)fs.writeFileSync(p.join(dir,String(d),'f'+f),'restored');}`;

async function round(policy, n) {
  const out = join(root, `written-${policy}-${n}`);
  const began = performance.now();
  const child = spawn(process.execPath, ['-e', writer, out], { stdio: 'inherit' });
  let watching = true;
  let walks = 0;
  let walkingMs = 0;
  const watched = (async () => {
    let gap = 250;
    while (watching) {
      await new Promise((resolve) => setTimeout(resolve, gap));
      if (!watching) break;
      const t = performance.now();
      await sizeOf(tree, () => watching);
      const took = performance.now() - t;
      walks += 1;
      walkingMs += took;
      gap = policy === 'A' ? 250 : Math.max(250, 9 * took);
    }
  })();
  await new Promise((resolve) => child.on('exit', resolve));
  const writerMs = performance.now() - began;
  watching = false;
  await watched;
  rmSync(out, { recursive: true, force: true });
  return { writerMs, walks, share: walkingMs / writerMs };
}

const results = { A: [], B: [] };
try {
  for (let n = 0; n < ROUNDS; n += 1) {
    for (const policy of ['A', 'B']) {
      const r = await round(policy, n);
      results[policy].push(r);
      console.log(
        `${policy} round ${n + 1}: writer ${r.writerMs.toFixed(0)} ms, ${r.walks} walks, walking ${(100 * r.share).toFixed(0)}% of the time`,
      );
    }
  }
  for (const policy of ['A', 'B']) {
    const ms = results[policy].map((r) => r.writerMs).sort((a, b) => a - b);
    console.log(
      `${policy}: writer median ${ms[Math.floor(ms.length / 2)].toFixed(0)} ms (${FILES} files walked, ${WRITES} written)`,
    );
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
