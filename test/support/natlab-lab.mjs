// The NAT lab's namespaces, shared by the e2e tests (natlab.ts) and the mesh benchmark
// (test/bench/mesh/natlab.mjs, plain .mjs, which cannot import TypeScript). What runs in them is
// each one's own.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** ../shared/tools/natlab.py, which builds the lab; undefined where it is not on this machine. */
export const NATLAB = [resolve(ROOT, '..', 'shared', 'tools', 'natlab.py'), '/work/shared/tools/natlab.py'].find((p) =>
  existsSync(p),
);
/** The public segment's address (the relay and coturn serve there). */
export const PUB_IP = '10.99.0.1';

/**
 * Builds the lab with natlab.py (its namespaces outlive the script) and gives its public segment a
 * route beyond itself; returns the namespaces by place (pub, natA, hostA, natB, hostB). The caller
 * removes them with removeLab; a lab that fails half-way is removed here.
 * @param {'cone' | 'symmetric'} mode
 * @returns {Record<string, string>}
 */
export function buildLab(mode) {
  if (NATLAB === undefined) throw new Error('natlab.py is not on this machine');
  const script =
    `import sys, json; sys.path.insert(0, ${JSON.stringify(resolve(NATLAB, '..'))}); import natlab\n` +
    `lab = natlab.NatLab(${JSON.stringify(mode)}); lab.__enter__(); print(json.dumps(lab.ns))`;
  const ns = JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8', timeout: 30_000 }));
  try {
    internetBeyond(ns);
  } catch (error) {
    removeLab(ns);
    throw error;
  }
  return ns;
}

/** Removes every namespace of the lab (one already gone is skipped). */
export function removeLab(ns) {
  for (const name of Object.values(ns)) {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // gone already
    }
  }
}

/**
 * natlab's public segment has no route beyond itself; the internet a TURN server sits on has one.
 * Without it coturn, relaying a check toward a peer's private host candidate (192.168.x, offered
 * with the others), gets "network unreachable" and drops the whole allocation, so no pair through
 * it ever forms. A default route into a link where nothing answers: such packets vanish, as they
 * would on the internet.
 */
function internetBeyond(ns) {
  for (const argv of [
    ['link', 'add', 'beyond0', 'type', 'veth', 'peer', 'name', 'beyond1'],
    ['link', 'set', 'beyond0', 'up'],
    ['link', 'set', 'beyond1', 'up'],
    ['addr', 'add', '10.98.0.1/30', 'dev', 'beyond0'],
    ['neigh', 'add', '10.98.0.2', 'lladdr', '02:00:00:00:00:01', 'dev', 'beyond0', 'nud', 'permanent'],
    ['route', 'add', 'default', 'via', '10.98.0.2'],
  ]) {
    execFileSync('ip', ['-n', ns.pub, ...argv], { stdio: 'ignore' });
  }
}
