// One side of ab.mjs: the agent and core of the checkout ROOT, a preview of ORIGIN; each stdin line
// `wrk SECONDS PATH CONNECTIONS` runs wrk through it and prints one JSON line; `quit` ends it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
const ROOT = process.argv[2];
const ORIGIN = Number(process.argv[3]);
// ROOT `ssh`: `ssh -L` through a throwaway sshd instead (support.mjs of this checkout), its
// ssh and sshd's per-connection process in the agent's and the core's columns.
const SSH = ROOT === 'ssh';
const sup = await import(join(SSH ? join(import.meta.dirname, '..', '..', '..') : ROOT, 'test/bench/support.mjs'));
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'hangar-bench-ab-side-')));
let agentPid, corePid, port, stop;
if (SSH) {
  const sshd = await sup.startSshd(dir).catch((error) => ({ reason: error.message }));
  if (sshd.reason) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(sshd.reason);
  }
  let tunnel;
  stop = () => {
    tunnel?.kill();
    sshd.stop();
  };
  try {
    port = await sup.freePort();
    tunnel = spawn('ssh', sshd.ssh(['-N', '-L', `127.0.0.1:${port}:127.0.0.1:${ORIGIN}`]).slice(1), {
      stdio: 'ignore',
    });
    await sup.waitForPort(port, 'ssh -L');
    // The session's sshd: the forwarding one, a grandchild of the listener (sshd forks per connection).
    const kids = (pid) =>
      readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    let session = sshd.pid;
    for (let k = kids(session); k.length > 0; k = kids(session)) session = k.at(-1);
    agentPid = session;
    corePid = tunnel.pid;
  } catch (error) {
    // sshd runs as root on a port of 127.0.0.1 with the keys in `dir`: not left behind.
    stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
} else {
  const { HangarCore } = await import(join(ROOT, 'electron/core/dist/index.js'));
  const home = join(dir, 'home');
  const env = { ...process.env, HANGAR_HOME: home };
  const agentData = join(dir, 'agent');
  const agent = await sup.startAgent({ data: agentData, env, bin: join(ROOT, 'host-agent/bin/hangar-agent.js') });
  const { code } = JSON.parse(
    execFileSync(
      process.execPath,
      [join(ROOT, 'host-agent/bin/hangar-agent.js'), 'pair', '--data', agentData, '--json'],
      { encoding: 'utf8' },
    ),
  );
  execFileSync(
    process.execPath,
    [join(ROOT, 'electron/bin/hangar.js'), 'hosts', 'add', 'bench', agent.address, '--code', code],
    { env },
  );
  const core = await HangarCore.open({ home });
  await core.previews.add('bench', ORIGIN);
  port = (await core.previews.open('bench', ORIGIN)).local_port;
  agentPid = agent.child.pid;
  corePid = process.pid;
  stop = async () => {
    agent.child.kill();
    await core.dispose();
  };
}
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return [Number(x[11]) * 10, Number(x[12]) * 10];
};
const io = (pid) => {
  const t = readFileSync(`/proc/${pid}/io`, 'utf8');
  return [Number(/syscr: (\d+)/.exec(t)[1]), Number(/syscw: (\d+)/.exec(t)[1])];
};
/** The main thread's voluntary context switches: its sleeps in epoll_wait, i.e. its wake-ups. */
const wakes = (pid) => Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const self = () => {
  if (SSH) return cpu(corePid);
  const u = process.cpuUsage();
  return [u.user / 1000, u.system / 1000];
};
console.log(JSON.stringify({ ready: port, agent: agentPid, core: corePid }));
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, arg, path = '/asset.js', conns = '32'] = line.split(' ');
  if (cmd === 'quit') break;
  const a0 = cpu(agentPid),
    c0 = self();
  const ai0 = io(agentPid),
    ci0 = io(corePid);
  const aw0 = wakes(agentPid),
    cw0 = wakes(corePid);
  const { stdout: out } = await promisify(execFile)(
    'wrk',
    ['-t2', `-c${conns}`, `-d${arg}s`, '--latency', '-H', `Host: localhost:${port}`, `http://127.0.0.1:${port}${path}`],
    { encoding: 'utf8' },
  );
  const a1 = cpu(agentPid),
    c1 = self();
  const ai1 = io(agentPid),
    ci1 = io(corePid);
  const aw1 = wakes(agentPid),
    cw1 = wakes(corePid);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const p = (q) => {
    const m = new RegExp(q + '%\\s+([\\d.]+)(us|ms|s)').exec(out);
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  const per = (x, y) => ((y - x) * 1000) / requests;
  console.log(
    JSON.stringify({
      rps,
      p50: p(50),
      p99: p(99),
      agentUs: [per(a0[0], a1[0]), per(a0[1], a1[1])],
      coreUs: [per(c0[0], c1[0]), per(c0[1], c1[1])],
      agentIo: [(ai1[0] - ai0[0]) / requests, (ai1[1] - ai0[1]) / requests],
      coreIo: [(ci1[0] - ci0[0]) / requests, (ci1[1] - ci0[1]) / requests],
      wakes: [(aw1 - aw0) / requests, (cw1 - cw0) / requests],
    }),
  );
}
await stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
