import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { enterDelegatedLeaf } from '../../src/service/cgroup-leaf.js';

// A cgroup v2 tree as systemd leaves it for a unit with Delegate=yes, in a temp dir: the kernel's
// files are plain files here, so what the agent writes into them can be read back.
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function delegatedTree(controllers: string): { root: string; service: string } {
  const root = mkdtempSync(join(tmpdir(), 'hangar-cgroup-'));
  dirs.push(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  const service = join(root, 'system.slice', 'hangar-agent.service');
  mkdirSync(service, { recursive: true });
  writeFileSync(join(service, 'cgroup.controllers'), `${controllers}\n`);
  writeFileSync(join(service, 'cgroup.subtree_control'), '');
  writeFileSync(join(service, 'cgroup.procs'), '4242\n');
  return { root, service };
}

const SELF = '0::/system.slice/hangar-agent.service\n';

describe('a delegated cgroup', () => {
  it('moves the agent into a leaf and hands cpu, memory and pids to the per-job cgroups beside it', () => {
    const { root, service } = delegatedTree('cpu memory pids');
    const result = enterDelegatedLeaf({ root, selfCgroup: SELF, pid: 4242 });
    expect(result).toEqual({ parent: service });
    expect(readFileSync(join(service, 'agent', 'cgroup.procs'), 'utf8')).toBe('4242');
    expect(readFileSync(join(service, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
  });

  it('is left alone when a controller the limits need is not delegated (jobs fall back to rlimits)', () => {
    const { root, service } = delegatedTree('memory pids');
    const result = enterDelegatedLeaf({ root, selfCgroup: SELF, pid: 4242 });
    expect(result).toEqual({ reason: `the delegated cgroup ${service} lacks the cpu controller(s)` });
    expect(readFileSync(join(service, 'cgroup.subtree_control'), 'utf8')).toBe('');
  });

  it('is not attempted outside a cgroup v2 hierarchy', () => {
    const root = mkdtempSync(join(tmpdir(), 'hangar-cgroup-v1-'));
    dirs.push(root);
    expect(enterDelegatedLeaf({ root, selfCgroup: SELF })).toEqual({ reason: `${root} is not a cgroup v2 hierarchy` });
  });
});
