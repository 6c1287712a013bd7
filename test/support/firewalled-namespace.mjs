// The network namespace a host is put in behind a firewall, for the tests
// (test/support/firewalled-host.ts) and the benches (test/bench/two-hosts.mjs). Needs root.
import { randomBytes } from 'node:crypto';

/**
 * Fresh names for one: the namespace `<prefix>-<id>`, the veth ends `<veth>o<id>` (here) and
 * `<veth>i<id>` (there, at most 15 characters each), and a /30 in 10.100-199.x.
 * @param {{ prefix: string; veth: string }} names
 */
export function namespaceNames({ prefix, veth }) {
  const id = randomBytes(3).toString('hex');
  return {
    name: `${prefix}-${id}`,
    outside: `${veth}o${id}`,
    inside: `${veth}i${id}`,
    net: `10.${100 + (parseInt(id.slice(0, 2), 16) % 100)}.${parseInt(id.slice(2, 4), 16)}`,
  };
}

/**
 * The commands that make it: a veth pair to the namespace (net.1 here, net.2 there), in there an
 * INPUT policy that drops every new connection from outside (its own outbound connections and
 * their answers pass) and, unless `udp`, no UDP out either, as on networks that allow only TCP: no
 * WebRTC path forms (its outbound packets would otherwise open the stateful firewall for the
 * answers). `defaultRoute` routes everything else through net.1.
 * @param {{ name: string; outside: string; inside: string; net: string }} ns
 * @param {{ udp: boolean; defaultRoute: boolean }} options
 * @returns {string[][]}
 */
export function firewalledNamespaceSteps({ name, outside, inside, net }, { udp, defaultRoute }) {
  const inNamespace = ['ip', 'netns', 'exec', name];
  return [
    ['ip', 'netns', 'add', name],
    ['ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside],
    ['ip', 'link', 'set', inside, 'netns', name],
    ['ip', 'addr', 'add', `${net}.1/30`, 'dev', outside],
    ['ip', 'link', 'set', outside, 'up'],
    ['ip', '-n', name, 'addr', 'add', `${net}.2/30`, 'dev', inside],
    ['ip', '-n', name, 'link', 'set', inside, 'up'],
    ['ip', '-n', name, 'link', 'set', 'lo', 'up'],
    ...(defaultRoute ? [['ip', '-n', name, 'route', 'add', 'default', 'via', `${net}.1`]] : []),
    [
      ...inNamespace,
      ...['iptables', '-A', 'INPUT', '-i', inside, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED'],
      ...['-j', 'ACCEPT'],
    ],
    [...inNamespace, 'iptables', '-A', 'INPUT', '-i', inside, '-j', 'DROP'],
    ...(udp ? [] : [[...inNamespace, 'iptables', '-A', 'OUTPUT', '-o', inside, '-p', 'udp', '-j', 'DROP']]),
  ];
}
