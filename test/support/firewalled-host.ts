import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { firewalledNamespaceSteps, namespaceNames } from './firewalled-namespace.mjs';

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
  const { name, outside, inside, net } = namespaceNames({ prefix: 'hgsplice', veth: 'hg' });
  const steps = firewalledNamespaceSteps({ name, outside, inside, net }, { udp: false, defaultRoute: true });
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
