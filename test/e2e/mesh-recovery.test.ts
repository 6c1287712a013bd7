import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AttachedCli } from '../support/pty-client.js';
import { BASH, HANGAR_BIN, hangar, hangarAgent, killTmuxServer, startAgentProcess } from '../support/processes.js';
import { supervise } from '../support/serving-cli.js';
import { dirFor, useCleanups } from '../support/cleanups.js';
import { ticks } from '../support/ticking-terminal.js';

/**
 * A device whose address changes mid-session (Wi-Fi to another network, a DHCP renewal): the
 * device's core runs in a network namespace the test makes, linked to a host's agent outside it;
 * the namespace's address moves, so the link's TCP connection goes silent (nothing closes it).
 * The core notices (the mux's heartbeat), dials again through its path choice from the new
 * address, and the attached terminal resumes with exactly the bytes it missed.
 */

const run = promisify(execFile);

const cleanups = useCleanups();
const dir = (prefix: string) => dirFor(cleanups, prefix);

/** A namespace for the device: a veth pair, 10.a.b.1 here (the host side), 10.a.b.2 there. */
async function deviceNetwork() {
  const id = randomBytes(3).toString('hex');
  const name = `hgdev-${id}`;
  const outside = `hgdo${id}`;
  const inside = `hgdi${id}`;
  const net = `10.${100 + (parseInt(id.slice(0, 2), 16) % 100)}.${parseInt(id.slice(2, 4), 16)}`;
  const ns = (...args: string[]) => run('ip', ['-n', name, ...args]);
  const dispose = async () => {
    await run('ip', ['netns', 'delete', name]).catch(() => undefined);
    await run('ip', ['link', 'delete', outside]).catch(() => undefined);
  };
  cleanups.push(dispose);
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
  await run('ip', ['link', 'set', inside, 'netns', name]);
  await run('ip', ['addr', 'add', `${net}.1/24`, 'dev', outside]);
  await run('ip', ['link', 'set', outside, 'up']);
  // Removing the first address keeps the second one (and its routes) instead of flushing both.
  await run('ip', ['netns', 'exec', name, 'sysctl', '-qw', `net.ipv4.conf.${inside}.promote_secondaries=1`]);
  await ns('addr', 'add', `${net}.2/24`, 'dev', inside);
  await ns('link', 'set', inside, 'up');
  await ns('link', 'set', 'lo', 'up');
  await ns('route', 'add', 'default', 'via', `${net}.1`);
  return {
    hostIp: `${net}.1`,
    /** Where the device is after moveAddress. */
    movedIp: `${net}.3`,
    wrapper: ['ip', 'netns', 'exec', name],
    /** The device moves from 10.a.b.2 to 10.a.b.3: connections made from the old address go silent. */
    async moveAddress() {
      await ns('addr', 'add', `${net}.3/24`, 'dev', inside);
      await ns('addr', 'del', `${net}.2/24`, 'dev', inside);
      await ns('route', 'replace', 'default', 'via', `${net}.1`);
    },
  };
}

/** `hangar ui` in the namespace: the device's live core, which hangar commands here reach through its local door. */
async function coreIn(wrapper: string[], home: string): Promise<void> {
  const child = spawn(wrapper[0]!, [...wrapper.slice(1), process.execPath, HANGAR_BIN, 'ui'], {
    env: { ...process.env, HANGAR_HOME: home, HANGAR_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const served = supervise(child);
  cleanups.push(() => served.stop());
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hangar ui did not start in 15 s: ${served.output()}`)), 15_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('Hangar UI at')) return;
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('link recovery', { timeout: 120_000 }, () => {
  it("the device's address changes mid-session: the link is dialed again and the terminal resumes within 10 s, nothing lost or doubled", async () => {
    const network = await deviceNetwork();
    const laptop = dir('laptop');
    await coreIn(network.wrapper, laptop);
    const agentData = dir('agent');
    const agent = await startAgentProcess(agentData, {
      logLevel: 'info',
      extraArgs: ['--listen', `${network.hostIp}:0`],
    });
    cleanups.push(async () => {
      await agent.stop();
      await killTmuxServer(agentData);
    });
    const issued = await hangarAgent(['pair', '--data', agentData, '--json']);
    expect(issued.code, issued.stderr).toBe(0);
    const { code } = JSON.parse(issued.stdout) as { code: string };
    // Through the running core's door: the core in the namespace pairs, and holds the link.
    const added = await hangar(laptop, ['hosts', 'add', 'box', agent.address, '--code', code]);
    expect(added.code, added.stderr).toBe(0);
    const made = await hangar(laptop, ['session', 'new', 'box', '--name', 'ticks', ...BASH]);
    expect(made.code, made.stderr).toBe(0);

    // The command runs outside the core's namespace (a user's would run beside their core): kept on
    // the running core (no move onto a link of its own, issue 17), it shows that core's recovery.
    const attached = new AttachedCli(laptop, ['box', 'ticks'], undefined, { HANGAR_ATTACH_HANDOVER: 'off' });
    cleanups.push(() => attached[Symbol.asyncDispose]());
    await attached.waitForText('$ ');
    const stop = join(agentData, 'stop-ticking');
    attached.type(`i=0; while [ ! -e ${stop} ]; do i=$((i+1)); echo tick-$i; sleep 0.02; done; echo ticks-""done\r`);
    await attached.waitForText(/^tick-20$/m);

    /** Where the agent's authenticated links came from. */
    const linkedFrom = () =>
      agent
        .stderr()
        .split('\n')
        .filter((line) => line.includes('link authenticated'))
        .map((line) => (JSON.parse(line) as { remoteAddress: string }).remoteAddress);
    expect(linkedFrom().some((a) => a.includes(network.movedIp))).toBe(false);
    await network.moveAddress();
    const moved = Date.now();
    // The link carries nothing from now on; the core notices and says so on the terminal…
    await attached.waitForText('reconnecting…', 10_000);
    const atMove = ticks(attached.raw).length;
    // …then output goes on: the ticks tmux printed meanwhile arrive, and new ones after them.
    const deadline = moved + 15_000;
    while (ticks(attached.raw).length < atMove + 50) {
      if (Date.now() > deadline) throw new Error(`no output 15 s after the move: ${attached.raw.slice(-300)}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const resumedIn = Date.now() - moved;
    console.log(`[mesh-recovery] device address changed → terminal output again: ${resumedIn} ms`);
    expect(resumedIn).toBeLessThan(10_000);

    writeFileSync(stop, '');
    await attached.waitForText(/^ticks-done$/m, 10_000);
    const seen = ticks(attached.raw);
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
    attached.type('echo after-""move\r');
    await attached.waitForText(/^after-move$/m);
    // A new link, made from the new address.
    expect(linkedFrom().some((a) => a.includes(network.movedIp))).toBe(true);
  });
});
