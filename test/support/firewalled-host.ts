import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A network namespace for a host behind a firewall that lets nothing in: a veth pair to this
 * namespace (10.a.b.1 here, 10.a.b.2 there), and in there an INPUT policy that drops every new
 * connection from outside (what is answered to its own outbound connections passes) and lets no
 * UDP out (a network that allows only TCP: no WebRTC path). A process
 * started with `wrapper` runs in it: it reaches 10.a.b.1 (the relay listens there), and nothing
 * it listens on, nor any address it publishes, can be reached from here. Made and removed by the
 * test (needs root, as the NAT-lab tests do).
 */
export interface FirewalledHost extends AsyncDisposable {
  /** This namespace's end: where a relay both sides reach listens. */
  readonly outsideIp: string;
  /** Argv prefix that runs a command inside the namespace (ip netns exec execs it: same pid). */
  readonly wrapper: string[];
  dispose(): Promise<void>;
}

export async function firewalledHost(): Promise<FirewalledHost> {
  const id = randomBytes(3).toString('hex');
  const name = `hgsplice-${id}`;
  const outside = `hgo${id}`;
  const inside = `hgi${id}`;
  const net = `10.${100 + (parseInt(id.slice(0, 2), 16) % 100)}.${parseInt(id.slice(2, 4), 16)}`;
  const steps: string[][] = [
    ['ip', 'netns', 'add', name],
    ['ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside],
    ['ip', 'link', 'set', inside, 'netns', name],
    ['ip', 'addr', 'add', `${net}.1/30`, 'dev', outside],
    ['ip', 'link', 'set', outside, 'up'],
    ['ip', '-n', name, 'addr', 'add', `${net}.2/30`, 'dev', inside],
    ['ip', '-n', name, 'link', 'set', inside, 'up'],
    ['ip', '-n', name, 'link', 'set', 'lo', 'up'],
    ['ip', '-n', name, 'route', 'add', 'default', 'via', `${net}.1`],
    // A host firewall: its own outbound connections and their answers only.
    [
      'ip',
      'netns',
      'exec',
      name,
      'iptables',
      '-A',
      'INPUT',
      '-i',
      inside,
      '-m',
      'conntrack',
      '--ctstate',
      'ESTABLISHED,RELATED',
      '-j',
      'ACCEPT',
    ],
    ['ip', 'netns', 'exec', name, 'iptables', '-A', 'INPUT', '-i', inside, '-j', 'DROP'],
    // UDP blocked on the way out too, as on networks that allow only TCP: no WebRTC path forms
    // (its outbound packets would otherwise open the stateful firewall for the answers).
    ['ip', 'netns', 'exec', name, 'iptables', '-A', 'OUTPUT', '-o', inside, '-p', 'udp', '-j', 'DROP'],
  ];
  const dispose = async () => {
    // Deleting the namespace deletes its veth end, and with it the pair.
    await run('ip', ['netns', 'delete', name]).catch(() => undefined);
    await run('ip', ['link', 'delete', outside]).catch(() => undefined);
  };
  try {
    for (const [command, ...args] of steps) await run(command!, args);
  } catch (error) {
    await dispose();
    throw error;
  }
  return {
    outsideIp: `${net}.1`,
    wrapper: ['ip', 'netns', 'exec', name],
    dispose,
    [Symbol.asyncDispose]: dispose,
  };
}
