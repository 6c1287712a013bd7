import { isHangarError, type TaskInfo, type TaskSpecInput } from '@hangar/shared';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HangarCore } from '../../electron/core/src/index.js';
import { usePairedHost } from '../support/paired-host.js';
import { AttachedCli } from '../support/pty-client.js';
import {
  ROOT,
  endAgent,
  hangar,
  pairWith,
  removeDir,
  startAgentProcess,
  tempDir,
  type AgentProcess,
} from '../support/processes.js';
import { hangarWithInput } from '../support/relay-stack.js';
import { startServingCli, type ServingCli } from '../support/serving-cli.js';
import { until } from '../support/until.js';

/**
 * Agent tasks: a prompt queued on this computer, claimed by a host that fits and run there by an AI
 * coding agent in a session of its own. Claude Code is test/fixtures/claude, the stand-in that keeps
 * its documented hooks; it is on the PATH of only the agents a test gives it to.
 */
const STAND_IN_DIR = join(ROOT, 'test', 'fixtures', 'claude');
const WITH_CLAUDE = { PATH: `${STAND_IN_DIR}:${process.env['PATH']}` };
const WITHOUT_CLAUDE = { PATH: process.env['PATH']! };

const spec = (prompt: string, more: Partial<TaskSpecInput> = {}): TaskSpecInput => ({ prompt, ...more });
let ids = 0;
/** A task id as a computer's queue makes them (t- and 16 hex digits), distinct per test. */
const newId = () => `t-${(Date.now() * 1000 + ids++).toString(16).padStart(16, '0').slice(-16)}`;

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isHangarError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('a host claims agent tasks over the link', () => {
  const box = usePairedHost({
    agent: { env: WITH_CLAUDE, maxSessions: 2, extraArgs: ['--max-tasks', '1', '--label', 'gpu'] },
  });
  let core: HangarCore | undefined;
  afterEach(async () => {
    await core?.dispose();
    core = undefined;
  });
  const link = async () => {
    core = await HangarCore.open({ home: box.home });
    return core.connection('box');
  };

  it('says what it offers tasks, and refuses one it does not fit, naming each need it lacks', async () => {
    const host = await link();
    const info = await host.call('host.info', {});
    expect(info.tasks).toMatchObject({ agents: ['claude'], labels: ['gpu'], runner: 'user', max_tasks: 1 });
    const other = info.tasks!.os === 'linux' ? 'macos' : 'linux';

    const refused = await refusal(
      host.call('task.claim', {
        id: newId(),
        spec: spec('go', { needs: [`os:${other}`, 'label:gpu', 'label:tpu', 'no-such-program-here'] }),
        created_at: Date.now(),
      }),
    );
    expect(refused.code).toBe('E_TASK_UNFIT');
    expect(refused.message).toContain(`it needs os:${other} and this host runs ${info.tasks!.os}`);
    expect(refused.message).toContain('it needs label:tpu and this host');
    expect(refused.message).not.toContain('label:gpu');
    expect(refused.message).toContain("it needs no-such-program-here and that is not on this host agent's PATH");
    const service = await refusal(
      host.call('task.claim', { id: newId(), spec: spec('go', { runner: 'service' }), created_at: Date.now() }),
    );
    expect(service.message).toMatch(/needs a service runner and this host's agent is a user one/);
    expect((await host.call('task.list', {})).tasks).toEqual([]);
  });

  it('a second claim of a task is the same task, and a host at its limit refuses another', async () => {
    const host = await link();
    const id = newId();
    const first = await host.call('task.claim', { id, spec: spec('please run bash'), created_at: 1 });
    expect(first).toMatchObject({ id, state: 'starting', session: `task-${id.slice(2, 10)}` });
    const again = await host.call('task.claim', { id, spec: spec('please run bash'), created_at: 1 });
    expect(again.claimed_at).toBe(first.claimed_at);
    expect(again.session).toBe(first.session);
    expect((await host.call('task.list', {})).tasks.map((t) => t.id)).toEqual([id]);

    const full = await refusal(host.call('task.claim', { id: newId(), spec: spec('another'), created_at: 2 }));
    expect(full.code).toBe('E_TASK_LIMIT');
    expect(full.message).toContain('--max-tasks 1');

    // Cancelled, it no longer counts: the next one is taken.
    expect((await host.call('task.cancel', { id })).state).toBe('cancelled');
    const next = await host.call('task.claim', { id: newId(), spec: spec('fix the flaky test'), created_at: 3 });
    expect(next.state).not.toBe('error');
  });

  it('a host whose sessions are all taken refuses a task, which needs one', async () => {
    const host = await link();
    for (const name of ['one', 'two']) await host.call('session.create', { name, command: ['sleep', '60'] });
    const full = await refusal(host.call('task.claim', { id: newId(), spec: spec('go'), created_at: 1 }));
    expect(full.code).toBe('E_TASK_LIMIT');
    expect(full.message).toContain('runs 2 sessions already, its limit (hangar-agent serve --max-sessions 2)');
  });

  it('a task whose directory is not on the host does not fit it', async () => {
    const host = await link();
    const refused = await refusal(
      host.call('task.claim', { id: newId(), spec: spec('go', { cwd: '/no/such/dir' }), created_at: 1 }),
    );
    expect(refused.code).toBe('E_TASK_UNFIT');
    expect(refused.message).toMatch(/"\/no\/such\/dir" does not exist on this host/);
  });
});

describe('a task for an agent that takes its prompt as an option’s value', () => {
  // aider's CLI (its argparse: test/fixtures/aider) on the agent's PATH.
  const box = usePairedHost({
    agent: { env: { PATH: `${join(ROOT, 'test', 'fixtures', 'aider')}:${process.env['PATH']}` } },
  });
  let core: HangarCore | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await core?.dispose();
    core = undefined;
    dirs.splice(0).forEach(removeDir);
  });

  it('hands a prompt starting with "-" to that option (aider --message, gemini -p), with no `--` as its value', async () => {
    core = await HangarCore.open({ home: box.home });
    const host = core.connection('box');
    // A `--` after `--message` is argparse's "expected one argument" (gemini's yargs: "Not enough
    // arguments following: p"); "-v" alone after it is an option argparse does not know.
    for (const [agent, prompt] of [
      [['aider', '--yes-always', '--message'], '--help me fix x'],
      [['aider', '-m'], '- [ ] a checklist'],
      [['aider', '--msg'], '-v'],
    ] as const) {
      const cwd = tempDir('aider-task');
      dirs.push(cwd);
      const claimed = await host.call('task.claim', {
        id: newId(),
        spec: spec(prompt, { agent: [...agent], cwd }),
        created_at: Date.now(),
      });
      const ended = await until(async () => {
        const task = await host.call('task.get', { id: claimed.id });
        return ['completed', 'error', 'cancelled'].includes(task.state) ? task : undefined;
      }, `task ${claimed.id} ended`);
      expect(ended, agent.join(' ')).toMatchObject({ state: 'completed', exit_code: 0 });
      expect(readFileSync(join(cwd, 'aider-message.txt'), 'utf8')).toBe(prompt);
    }
  });
});

/** In order, on one computer and two hosts: alpha (no claude) from the start, beta paired by the first test. */
describe('hangar task', () => {
  let home: string;
  let alpha: AgentProcess;
  let beta: AgentProcess | undefined;
  const dirs: string[] = [];
  const clients: AttachedCli[] = [];
  let ui: ServingCli | undefined;

  beforeAll(async () => {
    home = tempDir('home');
    const alphaDir = tempDir('alpha');
    dirs.push(alphaDir);
    alpha = await startAgentProcess(alphaDir, { env: WITHOUT_CLAUDE });
    await pairWith(home, 'alpha', alpha);
  });
  afterAll(async () => {
    for (const client of clients) await client[Symbol.asyncDispose]();
    await ui?.stop();
    await endAgent(beta);
    await endAgent(alpha, home, ...dirs);
  });

  const startBeta = async (port?: number) => {
    const dataDir = beta?.dataDir ?? tempDir('beta');
    if (!dirs.includes(dataDir)) dirs.push(dataDir);
    beta = await startAgentProcess(dataDir, { env: WITH_CLAUDE, ...(port !== undefined ? { port } : {}) });
    return beta;
  };
  const show = async (id: string): Promise<TaskInfo> => {
    const shown = await hangar(home, ['task', 'show', id, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout) as TaskInfo;
  };
  const waitFor = async (id: string, state: string, timeoutMs = 15_000): Promise<TaskInfo> => {
    const deadline = Date.now() + timeoutMs;
    let last: TaskInfo | undefined;
    while (Date.now() < deadline) {
      last = await show(id);
      if (last.state === state) return last;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    throw new Error(`task ${id} never became ${state}; last: ${JSON.stringify(last)}`);
  };
  const add = async (args: string[]): Promise<TaskInfo> => {
    const added = await hangar(home, ['task', 'add', '--json', ...args]);
    expect(added.code, added.stderr).toBe(0);
    return JSON.parse(added.stdout) as TaskInfo;
  };

  it('a task no host fits stays queued with the reason, and a running app hands it to a fitting host that comes', async () => {
    ui = await startServingCli(home, ['ui'], /Hangar UI at (\S+)/);
    const queued = await add(['fix the flaky test', '--needs', 'claude']);
    expect(queued).toMatchObject({ state: 'queued', host: null });
    expect(queued.reason).toBe(
      "no host can take it now: alpha: does not fit: it needs claude and that is not on this host agent's PATH",
    );
    const listed = await hangar(home, ['task', 'ls']);
    expect(listed.stdout).toMatch(
      new RegExp(`^${queued.id}\\s+-\\s+queued\\s.*fix the flaky test\\s.*alpha: does not fit`, 'm'),
    );

    // beta has claude: paired through the running app, whose core offers the queue to it once linked.
    await pairWith(home, 'beta', await startBeta());
    const done = await waitFor(queued.id, 'completed');
    expect(done).toMatchObject({ host: 'beta', session: `task-${queued.id.slice(2, 10)}`, reason: null });
    await ui.stop();
    ui = undefined;
  });

  it('runs on the host that fits of two: waiting for the user in the agent’s words, completed once answered, each change pushed', async () => {
    // What beta pushes to a linked core (the window's Tasks view listens the same way).
    const core = await HangarCore.open({ home });
    const pushed: string[] = [];
    const events = core.connection('beta').on('task.updated', ({ task }) => pushed.push(task.state));
    await core.connection('beta').link();
    const added = await add(['please run bash', '--needs', 'claude']);
    expect(added.host).toBe('beta'); // alpha, first by name, lacks claude
    const asking = await waitFor(added.id, 'waiting_input');
    expect(asking.detail).toBe('Claude needs your permission to use Bash');
    expect((await hangar(home, ['task', 'ls'])).stdout).toMatch(
      new RegExp(`^${added.id}\\s+beta\\s+waiting_input\\s+${added.session}\\s.*Claude needs your permission`, 'm'),
    );

    // hangar task attach <id> is hangar attach beta <its session>.
    const terminal = new AttachedCli(home, [added.id], undefined, {}, ['task', 'attach']);
    clients.push(terminal);
    await terminal.waitForText('Allow Bash to run');
    terminal.type('y\r');
    const done = await waitFor(added.id, 'completed');
    expect(done.detail).toBeNull();
    await terminal.waitForText('Done.');
    events.dispose();
    await core.dispose();
    // Hooks that come in one burst make one change (the stand-in's prompt and question, say), so
    // running may be folded into what follows it; the order is the task's.
    const changes = pushed.filter((state, i) => state !== pushed[i - 1]);
    expect(changes[0]).toBe('starting');
    expect(changes.at(-1)).toBe('completed');
    expect(changes).toContain('waiting_input');
    expect(changes.every((state) => ['starting', 'running', 'waiting_input', 'completed'].includes(state))).toBe(true);
  });

  it('an agent command without hooks: running while it runs, completed on exit 0, error with its status otherwise', async () => {
    // The prompt is the command's last argument: here sh's $0. It runs until the test says stop.
    const workdir = tempDir('task-cwd');
    dirs.push(workdir);
    const waiting = 'while [ ! -e stop ]; do sleep 0.1; done';
    const ok = await add(['fine', '--host', 'beta', '--cwd', workdir, '--', 'sh', '-c', waiting]);
    expect(ok.host).toBe('beta');
    expect((await waitFor(ok.id, 'running')).exit_code).toBeNull();
    writeFileSync(join(workdir, 'stop'), '');
    expect((await waitFor(ok.id, 'completed')).exit_code).toBe(0);

    const failed = await add(['broken', '--host', 'beta', '--', 'sh', '-c', 'exit 3']);
    const error = await waitFor(failed.id, 'error');
    expect(error).toMatchObject({ exit_code: 3, reason: 'its agent exited with status 3' });

    const killed = await add(['killed', '--host', 'beta', '--cwd', workdir, '--', 'sh', '-c', 'sleep 60']);
    await waitFor(killed.id, 'running');
    expect((await hangar(home, ['session', 'kill', 'beta', killed.session!])).code).toBe(0);
    expect(await waitFor(killed.id, 'error')).toMatchObject({
      exit_code: null,
      reason: 'its session ended without an exit status: killed (hangar session kill, or tmux itself)',
    });
  });

  /** A task whose session stays (the stand-in ended its turn): the next test attaches to it. */
  let attachable: TaskInfo | undefined;
  it('a prompt starting with "-" reaches the agent as its prompt, not as an option', async () => {
    // Before the CLI's own `--` it is an option the CLI does not know: it says where the prompt goes.
    const unknown = await hangar(home, ['task', 'add', '--help me fix x']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`error: unknown option '--help me fix x'`);
    expect(unknown.stderr).toContain('a prompt that starts with "-" goes after --: hangar task add -- "<prompt>"');
    // After the CLI's own `--` the first argument is the prompt; claude refuses an unknown option.
    const added = await add(['--host', 'beta', '--', '--help me fix x']);
    expect(added.spec.prompt).toBe('--help me fix x');
    expect(await waitFor(added.id, 'completed')).toMatchObject({ exit_code: null, reason: null });
    const terminal = new AttachedCli(home, ['beta', added.session!]);
    clients.push(terminal);
    await terminal.waitForText('Working on: --help me fix x');
    attachable = added;
  });

  it('attach with input that is no terminal detaches when the input ends, the session left running', async () => {
    const added = attachable!;
    // Input that is no terminal (< /dev/null, a pipe) detaches when it ends, as ssh ends with its
    // stdin: the command exits and the session keeps running. It waited for keys forever.
    for (const args of [
      ['task', 'attach', added.id],
      ['attach', 'beta', added.session!],
    ]) {
      const piped = await hangarWithInput(home, args, '');
      expect(piped.code, piped.stderr).toBe(0);
      expect(piped.stderr).toContain(`[detached from beta/${added.session}; it keeps running`);
    }
    expect((await hangar(home, ['session', 'ls', 'beta'])).stdout).toContain(added.session!);
  });

  it('cancel ends a running task and its session; a queued one leaves the queue', async () => {
    const running = await add(['please run bash', '--needs', 'claude']);
    await waitFor(running.id, 'waiting_input');
    const cancelled = await hangar(home, ['task', 'cancel', running.id]);
    expect(cancelled.stdout).toBe(`task ${running.id} is cancelled\n`);
    const sessions = await hangar(home, ['session', 'ls', 'beta', '--json']);
    expect(sessions.stdout).not.toContain(running.session!);

    const queued = await add(['only alpha may', '--host', 'alpha']);
    expect(queued.state).toBe('queued');
    expect((await hangar(home, ['task', 'cancel', queued.id, '--json'])).stdout).toContain('"state": "cancelled"');
    expect((await show(queued.id)).state).toBe('cancelled');
  });

  it('a task outlives its host agent’s restart, and is answered after it', async () => {
    const added = await add(['please run bash', '--needs', 'claude']);
    await waitFor(added.id, 'waiting_input');
    const port = beta!.port;
    await beta!.stop();
    await startBeta(port);
    const after = await show(added.id);
    expect(after).toMatchObject({ state: 'waiting_input', host: 'beta', session: added.session });

    const terminal = new AttachedCli(home, ['beta', added.session!]);
    clients.push(terminal);
    await terminal.waitForText('Allow Bash to run');
    terminal.type('y\r');
    await waitFor(added.id, 'completed');
  });

  it('a task the command line gets wrong is refused with the field named, before anything is queued', async () => {
    const empty = await hangar(home, ['task', 'add', '']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the prompt is empty: say what the agent should do');
    // The prompt's own words, once, not zod's "Too big"; an agent command of 1.5 MiB of JSON named.
    const long = await hangar(home, ['task', 'add', 'x'.repeat(6 * 1024 + 1)]);
    expect(long.code).toBe(2);
    expect(long.stderr).toBe(
      "hangar: tasks.add: spec.prompt: the prompt is over 6 KiB: put the long part in a file in the task's directory and name it in the prompt\n",
    );
    const huge = await hangar(home, ['task', 'add', 'go', '--', ...Array<string>(64).fill('\x01'.repeat(4096))]);
    expect(huge.code).toBe(2);
    expect(huge.stderr).toContain('spec.agent: the agent command is 262208 bytes (UTF-8), at most 4096: tmux takes');
    const action = await hangar(home, ['task', 'add', 'go', '--runner', 'action']);
    expect(action.code).toBe(2);
    expect(action.stderr).toContain('Hangar has no CI runners');
    const needs = await hangar(home, ['task', 'add', 'go', '--needs', 'os:windows']);
    expect(needs.code).toBe(2);
    expect(needs.stderr).toMatch(/needs.*expected a need like os:linux/);
    const unknown = await hangar(home, ['task', 'add', 'go', '--host', 'gamma']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no host named "gamma"');
    const { queued } = JSON.parse((await hangar(home, ['task', 'ls', '--json'])).stdout) as { queued: TaskInfo[] };
    expect(queued).toEqual([]);
  });

  it('a host that cannot be reached is passed over, and named in the reason', async () => {
    await alpha.stop();
    const added = await add(['only alpha may', '--host', 'alpha']);
    expect(added.state).toBe('queued');
    expect(added.reason).toMatch(/^no host can take it now: alpha: cannot be reached \(/);
    // Without a running app nothing offers it again, and the command says so.
    const told = await hangar(home, ['task', 'add', 'again', '--host', 'alpha']);
    expect(told.stdout).toMatch(/^task t-[0-9a-f]{16} is queued: no host can take it now: alpha: cannot be reached/);
    expect(told.stderr).toContain('the running app (npm start, hangar ui) offers it again');
  });
});
