import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TOP_COMMANDS } from '../../electron/cli/src/command-index.js';
import { AttachedCli } from '../support/pty-client.js';
import {
  BASH,
  HANGAR_BIN,
  endAgent,
  hangar,
  pairWith,
  removeDir,
  startAgentProcess,
  tmux,
  tempDir,
  type AgentOptions,
  type AgentProcess,
} from '../support/processes.js';
import { startServingCli, supervise, type ServingCli } from '../support/serving-cli.js';
import { useCleanups } from '../support/cleanups.js';

const run = promisify(execFile);
const UI_ADDRESS = /Hangar UI at (\S+)/;

/** `hangar …` with HANGAR_DEBUG set: it says on stderr which core answered. */
async function hangarSaying(home: string, args: string[]) {
  return run(process.execPath, [HANGAR_BIN, ...args], {
    env: { ...process.env, HANGAR_HOME: home, HANGAR_DEBUG: '1' },
  });
}

/**
 * The files of the hangar command that `hangar …` loads, read: what its start-up costs. ES modules
 * through a module hook writing each file: URL to `list`; CommonJS ones (the bundle) from
 * require.cache when the process exits.
 */
async function filesLoadedBy(home: string, args: string[], list: string): Promise<{ url: string; text: string }[]> {
  const hooks = `import { appendFileSync } from 'node:fs';
    export async function load(url, context, next) {
      if (url.startsWith('file:')) appendFileSync(${JSON.stringify(list)}, url + '\\n');
      return next(url, context);
    }`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
  const required = join(home, 'required.cjs');
  writeFileSync(
    required,
    `const { appendFileSync } = require('node:fs');
    const { pathToFileURL } = require('node:url');
    process.on('exit', () => {
      for (const path of Object.keys(require.cache)) appendFileSync(${JSON.stringify(list)}, pathToFileURL(path).href + '\\n');
    });`,
  );
  await run(
    process.execPath,
    ['--require', required, '--import', `data:text/javascript,${encodeURIComponent(register)}`, HANGAR_BIN, ...args],
    {
      env: { ...process.env, HANGAR_HOME: home },
    },
  );
  const urls = readFileSync(list, 'utf8')
    .split('\n')
    .filter((url) => url !== '' && url !== pathToFileURL(required).href);
  return urls.map((url) => ({ url, text: readFileSync(new URL(url), 'utf8') }));
}

/** What bash's completion offers for `words` (the last one being typed), with the script hangar prints. */
async function bashCompletes(home: string, words: string[]): Promise<string[]> {
  const script = [
    `eval "$('${process.execPath}' '${HANGAR_BIN}' completion bash)"`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_hangar_complete',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', script], {
    env: { ...process.env, HANGAR_HOME: home },
  });
  return stdout.split('\n').filter((line) => line !== '');
}

describe('the hangar command and the core running on this computer', () => {
  const cleanups = useCleanups();

  const startHome = () => {
    const home = tempDir('door');
    cleanups.push(() => removeDir(home));
    return home;
  };
  const startAgent = async (options: AgentOptions = {}) => {
    const dataDir = tempDir('door-agent');
    const agent = await startAgentProcess(dataDir, options);
    cleanups.push(() => endAgent(agent, dataDir));
    return Object.assign(agent, { dataDir });
  };
  /** A listener that is not a core at `path`; its connections are cut when the test ends. */
  const listenAt = async (path: string, behave: (connection: Socket) => void) => {
    const connections = new Set<Socket>();
    const server: Server = createServer((connection) => {
      connections.add(connection);
      behave(connection);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    cleanups.push(() => {
      for (const connection of connections) connection.destroy();
      return new Promise((resolve) => server.close(resolve));
    });
  };
  const startUi = async (home: string): Promise<ServingCli> => {
    const ui = await startServingCli(home, ['ui'], UI_ADDRESS);
    cleanups.push(() => ui.stop());
    return ui;
  };

  it('commands use the running core (hosts, sessions, completion, attach); with it stopped they work on their own', async () => {
    const home = startHome();
    const agent: AgentProcess = await startAgent();
    const ui = await startUi(home);
    const socket = join(home, 'core.sock');
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(home).mode & 0o777).toBe(0o700);

    // Added through the running core: it is that core's host (and link) from now on.
    await pairWith(home, 'box', agent);
    const listed = await hangarSaying(home, ['hosts', 'ls']);
    expect(listed.stderr).toContain(`using the Hangar core running on this computer (pid ${ui.child.pid}`);
    expect(listed.stdout).toMatch(/^box\s/m);

    const created = await hangar(home, ['session', 'new', 'box', '--name', 'work', ...BASH]);
    expect(created.code, created.stderr).toBe(0);
    const sessions = await hangarSaying(home, ['session', 'ls', '--json']);
    expect(sessions.stderr).toContain(`pid ${ui.child.pid}`);
    // A core of this build: trusted to check calls and answers, so the command loads no schema (issue 18).
    expect(sessions.stderr).toContain('same protocol tables: it checks calls and answers');
    const loaded = await filesLoadedBy(home, ['session', 'ls'], join(home, 'loaded.txt'));
    // Of the command's own files, two: the bundle's main.cjs and the one file of `session` (issue 18).
    expect(
      loaded
        .map((file) => file.url)
        .filter((url) => url.includes('/electron/cli/'))
        .map((url) => url.slice(url.indexOf('/electron/cli/') + '/electron/cli/'.length))
        .sort(),
    ).toEqual(['bundle/command-session.cjs', 'bundle/main.cjs']);
    expect(loaded.filter((file) => file.text.includes('$ZodType')).map((file) => file.url)).toEqual([]);
    expect(JSON.parse(sessions.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'work', alive: true })]);

    // The running core answers listings from what the host pushed (issue 18): a session made and
    // ended by another client (here a command with a core of its own) shows up and goes.
    const names = async () =>
      (
        JSON.parse((await hangarSaying(home, ['session', 'ls', 'box', '--json'])).stdout)[0].sessions as {
          name: string;
        }[]
      )
        .map((s) => s.name)
        .sort();
    const listedBy = async (want: string[]) => {
      const began = Date.now();
      while ((await names()).join() !== want.join()) {
        if (Date.now() - began > 10_000)
          throw new Error(`session ls never showed ${want.join()}: ${(await names()).join()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const elsewhere = (args: string[]) =>
      run(process.execPath, [HANGAR_BIN, ...args], {
        env: { ...process.env, HANGAR_HOME: home, HANGAR_LOCAL_DOOR: 'off' },
      });
    await elsewhere(['session', 'new', 'box', '--name', 'other', ...BASH]);
    await listedBy(['other', 'work']);
    await elsewhere(['session', 'kill', 'box', 'other']);
    await listedBy(['work']);

    // Tab completion asks the same core: commands, then hosts, then that host's sessions.
    expect(await bashCompletes(home, ['hangar', 'att'])).toEqual(['attach']);
    expect(await bashCompletes(home, ['hangar', 'attach', ''])).toEqual(['box']);
    expect(await bashCompletes(home, ['hangar', 'attach', 'box', 'w'])).toEqual(['work']);
    expect(await bashCompletes(home, ['hangar', 'session', 'kill', 'box', ''])).toEqual(['work']);

    // A terminal through the running core's door: typed keys and output both ways, detach ends it.
    const client = new AttachedCli(home, ['box', 'work']);
    cleanups.push(() => client[Symbol.asyncDispose]());
    await client.waitForText('$');
    client.type('echo through-the-door-$((6*7))\r');
    await client.waitForText(/^through-the-door-42$/m);
    client.type('\x1d');
    expect(await client.waitForExit()).toBe(0);

    await ui.stop();
    expect(existsSync(socket)).toBe(false);
    const alone = await hangarSaying(home, ['session', 'ls', '--json']);
    expect(alone.stderr).toContain('no Hangar core runs on this computer');
    expect(JSON.parse(alone.stdout)[0].sessions).toEqual([expect.objectContaining({ name: 'work' })]);
  });

  it("a command with no core running runs the core from the bundle's one file, core.cjs, which finds the files beside the core's tsc output (the UI's build, shared's protocol modules)", async () => {
    const home = startHome();
    const agent = await startAgent();
    await pairWith(home, 'box', agent);
    // No core runs: `hosts ls` opens one of its own, from bundle/core.cjs; no module of the core's
    // or shared's tsc output (a few hundred ES module files) is loaded. The lane addon is, found
    // from the lane module's tsc output (lane/dist/native.js) although that module is in core.cjs.
    const root = pathToFileURL(join(HANGAR_BIN, '..', '..', '..')).href + '/';
    const loaded = await filesLoadedBy(home, ['hosts', 'ls'], join(home, 'loaded.txt'));
    const ours = loaded
      .map((file) => file.url)
      .filter((url) => url.startsWith(root) && !url.includes('/node_modules/'))
      .map((url) => url.slice(root.length))
      .filter((path) => path !== 'electron/bin/hangar.js');
    expect(ours.sort()).toEqual([
      'electron/cli/bundle/command-hosts.cjs',
      'electron/cli/bundle/core.cjs',
      'electron/cli/bundle/main.cjs',
      'lane/build/Release/lane.node',
    ]);
    // node-datachannel (libdatachannel) is loaded by a WebRTC attempt, not with the core.
    expect(loaded.map((file) => file.url).filter((url) => url.includes('node-datachannel'))).toEqual([]);
    // Like the command's own file, core.cjs runs from a V8 code cache made by an earlier run.
    const alone = await hangarSaying(home, ['hosts', 'ls']);
    expect(alone.stderr).toContain('using one of its own');
    expect(alone.stderr).toMatch(/code cache used: \S+\/cache\/core\./);
    // `hangar ui`, its core from core.cjs too: it serves the renderer's build (found from the
    // core's web server module), and says the protocol fingerprint of shared's modules (found
    // from the core's door module), which a command of this build trusts.
    const ui = await startUi(home);
    const page = await (await fetch(ui.url)).text();
    expect(page).toContain('<div id="root"></div>');
    expect(page).not.toContain('not built yet');
    const listed = await hangarSaying(home, ['hosts', 'ls']);
    expect(listed.stderr).toContain(`pid ${ui.child.pid}`);
    expect(listed.stderr).toContain('same protocol tables');
  });

  it('a listing larger than a pipe holds reaches a reader that starts late whole, with its exit status', async () => {
    const home = startHome();
    const agent = await startAgent({ maxSessions: 13 });
    await startUi(home);
    await pairWith(home, 'box', agent);
    // tmux takes about 16 KB of command a session: thirteen of 6.6 KB make the --json past the 64 KB a
    // pipe holds, so the command is still writing when it has its answer.
    const long = 'x'.repeat(3300);
    for (let i = 0; i < 13; i++) {
      const made = await hangar(home, [
        'session',
        'new',
        'box',
        '--name',
        `s${i}`,
        '--',
        'bash',
        '--norc',
        '-c',
        'exec sleep 600',
        long,
        long,
      ]);
      expect(made.code, made.stderr).toBe(0);
    }
    // The reader of the command's stdout (the shell's { … }) reads nothing until the test tells
    // it to through a FIFO, which it does once the command has said (HANGAR_DEBUG) that it has
    // its answer: the command is then ending with most of its output not yet taken.
    const go = join(home, 'go');
    await run('mkfifo', [go]);
    const pipeline = spawn(
      'bash',
      [
        '-c',
        '"$0" "$1" session ls box --json | { read -r _ < "$2"; cat; }; echo "status ${PIPESTATUS[0]}" >&2',
        process.execPath,
        HANGAR_BIN,
        go,
      ],
      {
        env: { ...process.env, HANGAR_HOME: home, HANGAR_DEBUG: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    cleanups.push(() => {
      // The shell, the command and the reader: its own process group.
      if (pipeline.exitCode === null) process.kill(-pipeline.pid!, 'SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    pipeline.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    // 'close': the shell has exited and its stdout and stderr are read to their end.
    const exited = new Promise<number | null>((resolve) => pipeline.once('close', resolve));
    await new Promise<void>((resolve, reject) => {
      pipeline.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (/ms: answered$/m.test(stderr)) resolve();
      });
      void exited.then(() => reject(new Error(`the command ended without its answer: ${stderr}`)));
    });
    await writeFile(go, 'go\n');
    expect(await exited).toBe(0);
    expect(stderr).toContain('status 0');
    expect(stderr).toContain('same protocol tables');
    expect(stdout.length).toBeGreaterThan(64 * 1024);
    const [listed] = JSON.parse(stdout) as { host: string; sessions: { name: string; command: string[] }[] }[];
    expect(listed!.sessions.map((session) => session.name).sort()).toEqual(
      Array.from({ length: 13 }, (_, i) => `s${i}`).sort(),
    );
    for (const session of listed!.sessions) expect(session.command.slice(-2)).toEqual([long, long]);
  });

  it("a job's log through the running core reaches hangar logs byte for byte: into a pipe whose reader pauses, into a file, and a short log without --follow", async () => {
    const home = startHome();
    const box = await startAgent();
    await startUi(home);
    await pairWith(home, 'box', box);
    // 24 MB that do not compress (the host link's 16 KiB reads, gathered by the core into bigger
    // frames), made alike here and in the job (a job has a /tmp of its own).
    const random = `openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 -in /dev/zero 2>/dev/null | head -c 24000000`;
    const expected = Buffer.concat([
      (await run('sh', ['-c', random], { encoding: 'buffer', maxBuffer: 64e6 })).stdout,
      Buffer.from('end\n'),
    ]);
    const ran = await hangar(home, ['run', '--host', 'box', '--no-workspace', '--detach', '-c', `${random}; echo end`]);
    expect(ran.code, ran.stderr).toBe(0);
    const id = ran.stdout.trim();
    // A reader that stops for a while, again and again: the command's read buffers go round while
    // some of their bytes wait in the pipe.
    const follower = spawn(process.execPath, [HANGAR_BIN, 'logs', id, '--host', 'box', '--follow'], {
      env: { ...process.env, HANGAR_HOME: home, HANGAR_DEBUG: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => void (follower.exitCode === null && follower.kill('SIGKILL')));
    const chunks: Buffer[] = [];
    let received = 0;
    let nextPause = 1_000_000;
    follower.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= nextPause) {
        nextPause += 3_000_000;
        follower.stdout.pause();
        setTimeout(() => follower.stdout.resume(), 200);
      }
    });
    let stderr = '';
    follower.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => follower.once('close', resolve));
    expect(code, stderr).toBe(0);
    expect(stderr).toContain('same protocol tables');
    const piped = Buffer.concat(chunks);
    expect(piped.length).toBe(expected.length);
    expect(piped.equals(expected)).toBe(true);
    // Into a file (one writev per read's pieces).
    const file = join(home, 'log.out');
    await run('sh', ['-c', `"$0" "$1" logs ${id} --host box --follow > ${file}`, process.execPath, HANGAR_BIN], {
      env: { ...process.env, HANGAR_HOME: home },
    });
    expect(readFileSync(file).equals(expected)).toBe(true);
    // A short log of an ended job, without --follow.
    const short = await hangar(home, ['run', '--host', 'box', '--no-workspace', '--detach', '-c', 'echo short']);
    const shortId = short.stdout.trim();
    await hangar(home, ['logs', shortId, '--host', 'box', '--follow']);
    for (let i = 0; i < 3; i++) {
      const logs = await hangar(home, ['logs', shortId, '--host', 'box']);
      expect(logs.code, logs.stderr).toBe(0);
      expect(logs.stdout).toBe('short\n');
    }
  }, 120_000);

  it('a tmux server killed under a running core (which no tmux hook tells) is reported by the listings', async () => {
    const home = startHome();
    const agent = await startAgent();
    await startUi(home);
    await pairWith(home, 'box', agent);
    expect((await hangar(home, ['session', 'new', 'box', '--name', 'work', ...BASH])).code).toBe(0);
    expect((await hangar(home, ['session', 'ls', 'box'])).code).toBe(0);
    expect((await hangar(home, ['session', 'ls', 'box'])).stdout).toMatch(/^box\s+work\s/m);
    const pid = Number((await tmux(agent.dataDir, ['display-message', '-p', '#{pid}'])).trim());
    process.kill(pid, 'SIGKILL');
    // The agent looks at its tmux server every second and pushes the loss; the core's list of box
    // may be the one from before until then.
    const began = Date.now();
    let listed = await hangar(home, ['session', 'ls', 'box']);
    while (listed.code !== 1 && Date.now() - began < 10_000) listed = await hangar(home, ['session', 'ls', 'box']);
    expect(listed.code).toBe(1);
    expect(listed.stderr).toContain(`the tmux server (pid ${pid}) exited while session "work" ran in it`);
  });

  it('jobs through the running core follow jobs run elsewhere; a host that went away is reported unreachable', async () => {
    const home = startHome();
    const box = await startAgent();
    const spare = await startAgent();
    await startUi(home);
    await pairWith(home, 'box', box);
    await pairWith(home, 'spare', spare);
    type Listed = { code: number; stdout: string; stderr: string };
    /** Runs `args` until `done` holds (each answer waits on the last: no fixed sleep), at most 20 s. */
    const until = async (args: string[], done: (result: Listed) => boolean): Promise<Listed> => {
      const began = Date.now();
      for (;;) {
        const result = await hangar(home, args);
        if (done(result)) return result;
        if (Date.now() - began > 20_000)
          throw new Error(`hangar ${args.join(' ')} never got there: ${JSON.stringify(result)}`);
      }
    };
    const jobsOf = (result: Listed, host: string) =>
      ((JSON.parse(result.stdout) as { host: string; jobs: { id: string; state: string }[] }[]).find(
        (g) => g.host === host,
      )?.jobs ?? []) as { id: string; state: string }[];
    // The core holds both hosts' newest jobs (none yet) and their session lists.
    expect((await hangar(home, ['jobs', '--json'])).code).toBe(0);
    // A command reaches the core while it loads; one that ends with a usage error is not held open by that socket.
    const wrong = await hangar(home, ['jobs', '--bogus']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("unknown option '--bogus'");

    // A job run by a command with a core of its own: the running core learns of it from box's
    // events, through to its end.
    const ran = await run(
      process.execPath,
      [HANGAR_BIN, 'run', '--host', 'box', '--no-workspace', '--detach', '-c', 'echo elsewhere'],
      { env: { ...process.env, HANGAR_HOME: home, HANGAR_LOCAL_DOOR: 'off' } },
    );
    const id = ran.stdout.trim();
    expect(id).toMatch(/^j-[a-z0-9]{8,32}$/);
    await until(['jobs', '--json'], (r) => jobsOf(r, 'box').some((job) => job.id === id && job.state === 'succeeded'));
    const limited = await hangar(home, ['jobs', '--host', 'box', '--limit', '1', '--json']);
    expect(jobsOf(limited, 'box').map((job) => job.id)).toEqual([id]);

    // spare goes away: its link drops, and listings say so (exit 5; in --json, its error) while
    // box is listed as before.
    await spare.stop('SIGKILL');
    const errorOf = (result: Listed) =>
      (JSON.parse(result.stdout) as { host: string; error?: { code: string } }[]).find((g) => g.host === 'spare')
        ?.error;
    const listed = await until(['jobs', '--json'], (r) => errorOf(r) !== undefined);
    expect(errorOf(listed)?.code).toBe('E_HOST_UNREACHABLE');
    expect(jobsOf(listed, 'box').map((job) => job.id)).toEqual([id]);
    for (const args of [['jobs'], ['session', 'ls'], ['hosts', 'ls']]) {
      const result = await hangar(home, args);
      if (args[0] === 'hosts') {
        expect(result.stdout).toMatch(/^spare\s+offline\s/m);
        continue;
      }
      expect(result.code, `hangar ${args.join(' ')}`).toBe(5);
      expect(result.stderr).toMatch(/^hangar: spare: nothing answers at /m);
      expect(result.stderr).not.toMatch(/^hangar: box: /m);
    }
  });

  it('a command that exits as soon as its output is written, or a client gone without reading, leaves the core no connection and nothing to say', async () => {
    const home = startHome();
    const agent = await startAgent();
    const ui = await startUi(home);
    await pairWith(home, 'box', agent);
    const socket = join(home, 'core.sock');
    const said = ui.output();
    // The core's end of each door connection: an accepted socket carries the listener's path in
    // /proc/net/unix, connected (st 03) where the listener is not (01).
    const open = () =>
      readFileSync('/proc/net/unix', 'utf8')
        .split('\n')
        .filter((line) => line.endsWith(` ${socket}`) && line.trim().split(/\s+/)[5] === '03').length;
    const listings = await Promise.all(
      Array.from({ length: 6 }, (_, i) => hangarSaying(home, [['session', 'ls'], ['jobs'], ['hosts', 'ls']][i % 3]!)),
    );
    for (const listing of listings) expect(listing.stderr).toContain('same protocol tables');
    // A client that greets and is then killed, the core's greeting unread: its socket is reset. It
    // is counted open first (the count sees a connection the core holds).
    const client = `const s = require('net').connect(${JSON.stringify(socket)}, () => {
      const hello = Buffer.from(JSON.stringify({ hangar: 'client', door: 1 }));
      const length = Buffer.alloc(4);
      length.writeUInt32BE(hello.length);
      s.write(Buffer.concat([length, hello]), () => console.log('greeted'));
    });`;
    const holder = spawn(process.execPath, ['-e', client], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => holder.kill('SIGKILL'));
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    const held = Date.now() + 10_000;
    while (open() === 0 && Date.now() < held) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(open()).toBeGreaterThan(0);
    holder.kill('SIGKILL');
    const closed = Date.now() + 10_000;
    while (open() > 0 && Date.now() < closed) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(open()).toBe(0);
    // Still serving, and nothing logged (warnings and errors) for any of it.
    expect((await hangarSaying(home, ['hosts', 'ls'])).stdout).toMatch(/^box\s/m);
    expect(ui.output().slice(said.length)).toBe('');
  });

  it('hangar preview open through the running core ends saying why when the preview is removed, or when the app stops', async () => {
    const home = startHome();
    const box = await startAgent();
    await startUi(home);
    await pairWith(home, 'box', box);
    const serve = async (port: number) => {
      expect((await hangar(home, ['preview', 'add', 'box', String(port)])).code).toBe(0);
      const open = supervise(
        spawn(process.execPath, [HANGAR_BIN, 'preview', 'open', 'box', String(port)], {
          env: { ...process.env, HANGAR_HOME: home },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        'SIGINT',
      );
      cleanups.push(() => open.stop());
      const exited = new Promise<number | null>((resolve) => open.child.once('exit', (code) => resolve(code)));
      while (!open.output().includes('Ctrl-C stops it')) {
        if (open.child.exitCode !== null) throw new Error(open.output());
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return { output: open.output, exited };
    };
    // Was: it went on running, serving nothing (the core closed the port), until Ctrl-C.
    const removed = await serve(47001);
    expect((await hangar(home, ['preview', 'rm', 'box', '47001'])).code).toBe(0);
    expect(await removed.exited).toBe(3);
    expect(removed.output()).toMatch(
      /hangar: the preview of box:47001 was removed .*; http:\/\/localhost:\d+\/ stopped/,
    );
    // Was: it exited 0 without a word when the app it went through was killed.
    const orphaned = await serve(47002);
    const core = await hangarSaying(home, ['hosts', 'ls']);
    const pid = Number(/pid (\d+)/.exec(core.stderr)![1]);
    process.kill(pid, 'SIGKILL');
    expect(await orphaned.exited).toBe(1);
    expect(orphaned.output()).toContain(
      'hangar: the Hangar app running on this computer stopped while this command ran',
    );
  });

  it('a socket left by a core that was killed counts as no core, and the next core takes its place', async () => {
    const home = startHome();
    const first = await startUi(home);
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    expect(existsSync(join(home, 'core.sock'))).toBe(true);

    const alone = await hangar(home, ['hosts', 'ls']);
    expect(alone.code).toBe(0);
    expect(alone.stderr).toBe('');
    expect(alone.stdout).toContain('no hosts yet');

    const second = await startUi(home);
    const reached = await hangarSaying(home, ['hosts', 'ls']);
    expect(reached.stderr).toContain(`pid ${second.child.pid}`);
  });

  it('another user cannot connect to the socket: the state dir is 0700 and the socket 0600', async () => {
    const home = startHome();
    await startUi(home);
    const socket = join(home, 'core.sock');
    const connectAsNobody = async () => {
      const { stdout } = await run('setpriv', [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--',
        process.execPath,
        '-e',
        `require('net').connect(${JSON.stringify(socket)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => console.log(e.code))`,
      ]);
      return stdout.trim();
    };
    expect(await connectAsNobody()).toBe('EACCES');
    // Even with the directory opened up, the socket itself admits only its owner.
    chmodSync(home, 0o755);
    try {
      expect(await connectAsNobody()).toBe('EACCES');
    } finally {
      chmodSync(home, 0o700);
    }
  });

  it.each([
    [
      'answers like something else',
      (socket: Socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'),
      /is not a Hangar core: it answered with something other than a Hangar greeting/,
    ],
    ['says nothing', () => undefined, /is not a Hangar core: it sent no Hangar greeting within 1500 ms/],
  ])(
    'a listener on the socket path that %s is refused with a clear error, and the command works on its own',
    async (_what, behave, message) => {
      const home = startHome();
      await listenAt(join(home, 'core.sock'), behave);

      const result = await hangar(home, ['hosts', 'ls']);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toContain('working without the running app');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('no hosts yet');
    },
  );

  it('a socket that another user owns is refused, even one that greets like a core', async () => {
    const home = startHome();
    const socket = join(home, 'core.sock');
    const greeting = Buffer.from(JSON.stringify({ hangar: 'core', door: 1, pid: 1 }));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(greeting.length);
    await listenAt(socket, (connection) => connection.write(Buffer.concat([length, greeting])));
    chownSync(socket, 65534, 65534);

    const result = await hangar(home, ['hosts', 'ls']);
    expect(result.stderr).toContain(`${socket} belongs to another user (uid 65534); working without the running app`);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('no hosts yet');
  });

  it('every top-level command answers --help and `hangar help <command>` (each from its own bundle file)', async () => {
    const home = startHome();
    const names = TOP_COMMANDS.filter((command) => !command.hidden).map((command) => command.name);
    for (let at = 0; at < names.length; at += 4) {
      await Promise.all(
        names.slice(at, at + 4).map(async (name) => {
          for (const args of [
            [name, '--help'],
            ['help', name],
          ]) {
            const result = await hangar(home, args);
            expect(result.code, `hangar ${args.join(' ')}: ${result.stderr}`).toBe(0);
            expect(result.stdout).toContain(`Usage: hangar ${name} `);
          }
        }),
      );
    }
  });

  it('prints completion scripts for bash, zsh and fish, and completes commands with no core running', async () => {
    const home = startHome();
    const bash = await hangar(home, ['completion', 'bash']);
    expect(bash.code).toBe(0);
    expect(bash.stdout).toContain('complete -o default -F _hangar_complete hangar');
    expect((await hangar(home, ['completion', 'zsh'])).stdout).toContain('compdef _hangar hangar');
    expect((await hangar(home, ['completion', 'fish'])).stdout).toContain('complete -c hangar');
    const wrong = await hangar(home, ['completion', 'tcsh']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('expected one of bash, zsh, fish');

    expect(await bashCompletes(home, ['hangar', 'se'])).toEqual(['session']);
    expect(await bashCompletes(home, ['hangar', 'session', ''])).toEqual(['new', 'ls', 'kill']);
    expect(await bashCompletes(home, ['hangar', 'session', 'ls', '--j'])).toEqual(['--json']);
    // The bash script was never eval'd with a core; no host is known here.
    expect(await bashCompletes(home, ['hangar', 'attach', ''])).toEqual([]);
  });
});
