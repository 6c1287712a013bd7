import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hangar, hangarAgent, removeDir, startAgentProcess, tempDir, type AgentProcess } from '../support/processes.js';
import { until } from '../support/until.js';

/** Changes a database the way a hand edit or a half-restored backup would, behind Hangar's back. */
function tamper(file: string, sql: string): void {
  const db = new Database(file);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

describe('a database changed outside Hangar', () => {
  const dirs: string[] = [];
  let agent: AgentProcess | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    for (const dir of dirs.splice(0)) removeDir(dir);
  });

  it('hangar hosts ls names the file, the host and the field, and the command that mends it', async () => {
    const home = tempDir('corrupt-home');
    dirs.push(home);
    expect((await hangar(home, ['hosts', 'ls'])).code).toBe(0);
    const file = join(home, 'hangar.db');
    tamper(
      file,
      `INSERT INTO hosts (name, address, agent_key, cert_fingerprint, embedded, added_at)
       VALUES ('box', '127.0.0.1:7777', '', 'ab:cd', 0, 0)`,
    );

    const listed = await hangar(home, ['hosts', 'ls']);
    expect(listed.code).not.toBe(0);
    expect(listed.stderr).toContain(`${file}: host "box" is not what Hangar wrote (agent_key:`);
    expect(listed.stderr).toContain('hangar hosts rm box');
    expect(listed.stderr).not.toMatch(/TypeError|at .*\.js:\d+/);

    // What it says to run works, and the rest of the file is read again.
    expect((await hangar(home, ['hosts', 'rm', 'box'])).code).toBe(0);
    const after = await hangar(home, ['hosts', 'ls', '--json']);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toEqual([]);
  });

  it('an agent whose relay enrollment row holds a word for a time says which file, table and field', async () => {
    const dataDir = tempDir('corrupt-agent');
    dirs.push(dataDir);
    expect((await hangarAgent(['pair', '--data', dataDir, '--json'])).code).toBe(0);
    const file = join(dataDir, 'agent.db');
    tamper(
      file,
      `INSERT INTO relay_enrollment (id, relay_url, host_id, account_id, name, enrolled_at)
       VALUES (1, 'https://relay.invalid', 'h1', 'a1', 'box', 'yesterday')`,
    );

    agent = await startAgentProcess(dataDir);
    const said = await until(
      () =>
        agent!
          .stderr()
          .split('\n')
          .find((line) => line.includes('could not read the relay enrollment')),
      'the agent to say it could not read its enrollment',
    );
    const logged = JSON.parse(said) as { err: { message: string; code: string } };
    expect(logged.err.code).toBe('E_STORE_CORRUPT');
    expect(logged.err.message).toContain(`${file}: a row of relay_enrollment is not what Hangar wrote (enrolled_at:`);
    expect(logged.err.message).toContain('restore it from a backup');
  });
});
