import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';
import { RelayClient, parseEnrollToken, type HangarError } from '@hangar/shared';
import { openCoreApi } from '../../electron/core/src/api/in-process-door.js';
import { HANGAR_BIN, hangar, removeDir } from '../support/processes.js';
import { HostShell, PASSWORD, hangarWithInput, loginCli, signupCli, useRelayStack } from '../support/relay-stack.js';

/**
 * Accounts through the hangar command against a real relay process: sign up, sign in on a second
 * computer (its own $HANGAR_HOME), the login renewed by itself, sign out; enrollment lines that work
 * once, expire, and belong to one account; and bad input to every new call named, refused with
 * status 2, and nothing stored.
 */

const { cleanups, dir, relayAt } = useRelayStack();

async function relay() {
  const data = dir('relay');
  return { ...(await relayAt(data)), data };
}

/** Reads (and with `update`, changes) the core's own database, as another process of this user would. */
function coreDb(home: string): Database.Database {
  return new Database(join(home, 'hangar.db'));
}

function stored(home: string): { refresh_token: string; access_expires_at: number } | undefined {
  const db = coreDb(home);
  try {
    return db.prepare('SELECT refresh_token, access_expires_at FROM relay_account').get() as
      { refresh_token: string; access_expires_at: number } | undefined;
  } finally {
    db.close();
  }
}

/** As if the 10-minute access token had run out: the next call must refresh first. */
function expireAccessToken(home: string): void {
  const db = coreDb(home);
  try {
    db.prepare('UPDATE relay_account SET access_expires_at = ?').run(Date.now() - 1_000);
  } finally {
    db.close();
  }
}

async function accountJson(home: string) {
  const shown = await hangar(home, ['account', '--json']);
  expect(shown.code, shown.stderr).toBe(0);
  return JSON.parse(shown.stdout) as {
    account: { email: string; device: { status: string; fingerprint: string; name: string } } | null;
  };
}

const FINGERPRINT = /fingerprint: ((?:[A-Z2-7]{4}-){7}[A-Z2-7]{4})/;

describe('an account on a relay, through the hangar command', () => {
  it('signs up, signs in a second computer as pending, renews the login by itself, and signs out', async () => {
    const { url } = await relay();
    const laptop = dir('laptop');
    const phone = dir('phone');

    const made = await signupCli(laptop, url, 'Me@Example.com');
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/signed in to .* as me@example\.com/);
    expect(made.stdout).toMatch(/trusted \(the account's first device\)/);
    expect((await accountJson(laptop)).account).toMatchObject({ email: 'me@example.com', device: { status: 'first' } });

    const twice = await signupCli(laptop, url, 'other@example.com');
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/signed in as me@example\.com .*hangar logout first/);

    const wrong = await hangarWithInput(
      phone,
      ['login', '--relay', url, '--email', 'me@example.com', '--password-stdin'],
      'not the password\n',
    );
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(/^hangar: /);
    expect((await accountJson(phone)).account).toBeNull();

    const joined = await loginCli(phone, url, 'me@example.com', 'phone');
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.stdout).toMatch(/waiting for approval[\s\S]*hangar devices approve "phone"/);
    const printed = FINGERPRINT.exec(joined.stdout)![1]!;
    // The trusted computer sees the same fingerprint for the new device: what the user compares.
    const listed = JSON.parse((await hangar(laptop, ['devices', 'ls', '--json'])).stdout) as {
      name: string;
      status: string;
      fingerprint: string;
      this_device: boolean;
    }[];
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'laptop', status: 'first', this_device: true }),
        expect.objectContaining({ name: 'phone', status: 'pending', fingerprint: printed, this_device: false }),
      ]),
    );

    // The access token runs out: the next command renews the login by itself (the refresh token rotates).
    const before = stored(laptop)!;
    expireAccessToken(laptop);
    expect((await hangar(laptop, ['devices', 'ls'])).code).toBe(0);
    const after = stored(laptop)!;
    expect(after.refresh_token).not.toBe(before.refresh_token);
    expect(after.access_expires_at).toBeGreaterThan(Date.now() + 60_000);

    // Two cores of this user at once (a window and a command, here two doors in this process) with
    // a spent access token: one renews, the other takes what it got. Presenting one refresh token
    // twice would make the relay end the whole login.
    expireAccessToken(laptop);
    const window = await openCoreApi({ home: laptop });
    const command = await openCoreApi({ home: laptop });
    try {
      const both = await Promise.all([window.call('devices.list', {}), command.call('devices.list', {})]);
      expect(both.map((listedBy) => listedBy.devices.length)).toEqual([2, 2]);
    } finally {
      await window.dispose();
      await command.dispose();
    }
    expect((await hangar(laptop, ['devices', 'ls'])).code).toBe(0);

    // Signing out ends the login at the relay too: its refresh token is refused from then on.
    const spent = stored(phone)!.refresh_token;
    const out = await hangar(phone, ['logout']);
    expect(out).toMatchObject({ code: 0, stdout: 'signed out\n' });
    expect((await accountJson(phone)).account).toBeNull();
    const refused = await new RelayClient({ url }).call('auth.refresh', { refresh_token: spent }).then(
      () => undefined,
      (error: unknown) => error as HangarError,
    );
    expect(refused?.code).toBe('E_AUTH_REQUIRED');
    const after2 = await hangar(phone, ['devices', 'ls']);
    expect(after2.code).toBe(4);
    expect(after2.stderr).toMatch(/not signed in to an account.*hangar login --relay/);

    // Signing in again on the same computer keeps its device (and its standing) in the account.
    const back = await loginCli(phone, url, 'me@example.com', 'phone');
    expect(back.code, back.stderr).toBe(0);
    expect(FINGERPRINT.exec(back.stdout)![1]).toBe(printed);
  });

  it('an enrollment line works once, expires, and cannot move a host into another account', async () => {
    const { url, data } = await relay();
    const laptop = dir('laptop');
    expect((await signupCli(laptop, url, 'me@example.com')).code).toBe(0);
    const host = new HostShell();
    cleanups.push(() => removeDir(host.home));

    const token = await hangar(laptop, ['hosts', 'enroll-token', '--name', 'mini']);
    expect(token.code, token.stderr).toBe(0);
    const line = token.stdout.trimEnd();
    // ONE line: the command to paste, with the name typed here.
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toMatch(/^hangar-agent enroll --data ~\/\.hangar-agent --name mini --token hgr1_[A-Za-z0-9_-]+$/);

    const enrolled = await host.run(line);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/enrolled as "mini"/);
    const again = await host.run(line);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already used on this host.*hangar hosts enroll-token/);
    const elsewhere = new HostShell();
    cleanups.push(() => removeDir(elsewhere.home));
    const replayed = await elsewhere.run(line);
    expect(replayed.code).toBe(1);
    expect(replayed.stderr).toMatch(/already used.*hangar hosts enroll-token/);

    // A line left 15 minutes: the relay's clock is moved past it in its database.
    const late = (await hangar(laptop, ['hosts', 'enroll-token', '--name', 'late'])).stdout.trimEnd();
    const lateId = parseEnrollToken(late.split(' --token ')[1]!).i;
    const relayDb = new Database(join(data, 'relay.db'));
    relayDb.prepare('UPDATE enroll_tokens SET expires_at = ? WHERE id = ?').run(Date.now() - 1, lateId);
    relayDb.close();
    const expired = await elsewhere.run(late);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/expired.*hangar hosts enroll-token/);

    // Another account's line on a host already in this one: refused, the host stays where it is.
    const stranger = dir('stranger');
    expect((await signupCli(stranger, url, 'someone-else@example.com')).code).toBe(0);
    const theirs = (await hangar(stranger, ['hosts', 'enroll-token', '--name', 'grab'])).stdout.trimEnd();
    const moved = await host.run(theirs);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toMatch(/enrolled in another account/);
    const strangerHosts = JSON.parse((await hangar(stranger, ['hosts', 'ls', '--json'])).stdout) as unknown[];
    expect(strangerHosts).toEqual([]);
    const mine = JSON.parse((await hangar(laptop, ['hosts', 'ls', '--json'])).stdout) as { name: string }[];
    expect(mine.map((h) => h.name)).toEqual(['mini']);
  });

  it('bad input to every account call names the field, exits 2, and stores nothing', async () => {
    const { url, data } = await relay();
    const home = dir('home');
    const bad: [string[], RegExp][] = [
      [['signup', '--relay', 'ftp://relay.example', '--email', 'me@example.com'], /account\.signup: relay_url: /],
      [['signup', '--relay', url, '--email', 'not-an-email'], /account\.signup: email: expected an email address/],
      [['signup', '--relay', url, '--email', 'me@example.com', '--device-name', 'a\u0007b'], /device_name: /],
      [['login', '--relay', 'relay.example', '--email', 'me@example.com'], /account\.login: relay_url: /],
      [['login', '--relay', url, '--email', '@example.com'], /account\.login: email: /],
    ];
    for (const [args, message] of bad) {
      const result = await hangarWithInput(home, [...args, '--password-stdin'], `${PASSWORD}\n`);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    const short = await hangarWithInput(
      home,
      ['signup', '--relay', url, '--email', 'me@example.com', '--password-stdin'],
      'short\n',
    );
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/account\.signup: password: password must be at least 8 characters/);
    expect(short.stderr).not.toContain('short\n');
    // No terminal and no --password-stdin: said, not waited on.
    const noTty = await hangarWithInput(home, ['signup', '--relay', url, '--email', 'me@example.com'], '');
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/password: there is no terminal to ask it on; give it on stdin with --password-stdin/);
    expect((await accountJson(home)).account).toBeNull();

    expect((await signupCli(home, url, 'me@example.com')).code).toBe(0);
    const signedIn: [string[], RegExp][] = [
      [['hosts', 'enroll-token', '--name', 'no spaces'], /hosts\.enroll_token: name: expected 1-32 letters/],
      [['devices', 'approve', 'phone', '--code', 'not a code!'], /devices\.approve: code: /],
      [['devices', 'approve', '', '--code', 'ABCD'], /devices\.approve: device: /],
      [['devices', 'revoke', ''], /devices\.revoke: device: /],
    ];
    for (const [args, message] of signedIn) {
      const result = await hangar(home, args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    // The calls without parameters refuse any, naming it (through the same door the window uses).
    const api = await openCoreApi({ home });
    try {
      for (const method of ['account.status', 'account.logout', 'devices.list'] as const) {
        const refused = await api.call(method, { extra: 1 } as never).then(
          () => undefined,
          (error: unknown) => error as HangarError,
        );
        expect(refused?.code, method).toBe('E_BAD_REQUEST');
        expect(refused?.message).toMatch(/extra/);
      }
      const probe = await api.call('hosts.list', { probe: 'yes' } as never).then(
        () => undefined,
        (error: unknown) => error as HangarError,
      );
      expect(probe?.code).toBe('E_BAD_REQUEST');
      expect(probe?.message).toMatch(/hosts\.list: probe: /);
    } finally {
      await api.dispose();
    }

    const relayDb = new Database(join(data, 'relay.db'), { readonly: true });
    const counts = relayDb
      .prepare('SELECT (SELECT COUNT(*) FROM accounts) AS accounts, (SELECT COUNT(*) FROM enroll_tokens) AS tokens')
      .get();
    relayDb.close();
    expect(counts).toEqual({ accounts: 1, tokens: 0 });
    const db = coreDb(home);
    expect(db.prepare('SELECT COUNT(*) AS n FROM enrollment_secrets').get()).toEqual({ n: 0 });
    db.close();
    expect((await accountJson(home)).account).toMatchObject({ email: 'me@example.com', device: { status: 'first' } });
  });

  it('asks the password at the terminal without echoing it, twice for a new account', async () => {
    const { url } = await relay();
    const home = dir('home');
    const child = pty.spawn(process.execPath, [HANGAR_BIN, 'signup', '--relay', url, '--email', 'me@example.com'], {
      cols: 120,
      rows: 20,
      env: { ...process.env, HANGAR_HOME: home } as Record<string, string>,
    });
    let output = '';
    const answers = [PASSWORD, PASSWORD];
    child.onData((data) => {
      output += data;
      if (/Password( again)?: $/.test(output) && answers.length > 0) child.write(`${answers.shift()}\r`);
    });
    const code = await new Promise<number>((resolve) => {
      const timer = setTimeout(() => child.kill(), 20_000);
      child.onExit(({ exitCode }) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, output).toBe(0);
    expect(output).toMatch(/Password: [\s\S]*Password again: [\s\S]*signed in to /);
    expect(output).not.toContain(PASSWORD);
    expect((await accountJson(home)).account).toMatchObject({ email: 'me@example.com' });
  });
});
