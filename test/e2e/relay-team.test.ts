import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { loadOrCreateDeviceKey } from '../../electron/core/src/identity/device-key.js';
import { hangar, type CliResult } from '../support/processes.js';
import {
  PASSWORD,
  enrollLine,
  hangarWithInput,
  loginCli,
  signupCli,
  useRelayStack,
  waitForHost,
} from '../support/relay-stack.js';

/**
 * A Team account's people through the hangar command (relay/PROTOCOL.md "Team members"), against a
 * real relay process and a real enrolled host: the owner invites, lists and withdraws invitations;
 * the invited person joins with the line `hangar team invite` printed (`hangar team join`) and waits
 * for approval; the owner removes her, and her device that host let in is refused from then on;
 * she cannot sign in again, nor remove anyone; the owner cannot remove themself.
 */

const { dir, relayAt, hostMachine } = useRelayStack();
/** What hangar login prints on a computer that waits for approval. */
const CODE = /approval code: ((?:[A-Z2-7]{4}-){7}[A-Z2-7]{4})/;

/** Runs a command until `done` holds for its result, or fails with its last output at the deadline. */
async function until(run: () => Promise<CliResult>, done: (r: CliResult) => boolean, what: string): Promise<CliResult> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const result = await run();
    if (done(result)) return result;
    if (Date.now() > deadline) throw new Error(`${what} never happened: ${result.code} ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface TeamList {
  members: { email: string; role: string; status: string }[];
  invites: { email: string; expires_at: number }[] | null;
}

async function teamLs(home: string): Promise<TeamList> {
  const listed = await hangar(home, ['team', 'ls', '--json']);
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout) as TeamList;
}

describe('a team through the hangar command', () => {
  it('the owner removes a member: a host refuses their device, their password no longer signs in', async () => {
    const relay = await relayAt(dir('relay'));
    const laptop = dir('laptop');
    expect((await signupCli(laptop, relay.url, 'owner@example.com')).code).toBe(0);
    const mini = await hostMachine();
    const ran = await mini.shell.run(await enrollLine(laptop, 'mini'));
    expect(ran.code, ran.stderr).toBe(0);
    await waitForHost(laptop, 'mini', (h) => h.status === 'online');
    const linked = await hangar(laptop, ['session', 'new', 'mini', '--name', 'desk', '--', 'sleep', '600']);
    expect(linked.code, linked.stderr).toBe(0);

    // Invitations: made, listed (never with the token), withdrawn.
    const invited = await hangar(laptop, ['team', 'invite', 'ana@example.com', '--json']);
    expect(invited.code, invited.stderr).toBe(0);
    const replaced = (JSON.parse(invited.stdout) as { invite_token: string }).invite_token;
    // Inviting again replaces it; what the owner is told to give names the command that joins.
    const invitedAgain = await hangar(laptop, ['team', 'invite', 'ana@example.com']);
    expect(invitedAgain.code, invitedAgain.stderr).toBe(0);
    const invitedText = invitedAgain.stdout;
    const token = /inv1_[A-Za-z0-9_-]{43}/.exec(invitedText)![0];
    expect(token).not.toBe(replaced);
    const bob = await hangar(laptop, ['team', 'invite', 'bob@example.com']);
    expect(bob.code, bob.stderr).toBe(0);
    expect(bob.stdout).toMatch(/inv1_/);
    const shown = await hangar(laptop, ['team', 'ls']);
    expect(shown.stdout).toMatch(/ana@example\.com[\s\S]*bob@example\.com/);
    expect(shown.stdout).not.toContain(token);
    const withdrawn = await hangar(laptop, ['team', 'withdraw', 'bob@example.com']);
    expect(withdrawn.code, withdrawn.stderr).toBe(0);
    expect((await teamLs(laptop)).invites?.map((i) => i.email)).toEqual(['ana@example.com']);

    // Ana joins with the line the owner was given (hangar team join, a password of her own), on a
    // first computer that waits for approval, saying how; then signs in on her desk, which the
    // owner approves with the code it shows; mini lets the desk in.
    const line = /^\s*(hangar team join .*)$/m.exec(invitedText)![1]!;
    expect(line).toBe(`hangar team join --relay ${relay.url} --email ana@example.com ${token}`);
    const anaFirst = dir('ana-first');
    const words = line.split(' ').slice(1); // ['team', 'join', '--relay', …]
    const typo = await hangarWithInput(
      anaFirst,
      [...words.slice(0, -1), 'inv1_short', '--password-stdin'],
      `${PASSWORD}\n`,
    );
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/invitation: expected an invitation token/);
    const wrongEmail = await hangarWithInput(
      anaFirst,
      ['team', 'join', '--relay', relay.url, '--email', 'eve@example.com', token, '--password-stdin'],
      `${PASSWORD}\n`,
    );
    expect(wrongEmail.code).not.toBe(0);
    expect(wrongEmail.stderr).toMatch(/not valid here/);
    const old = await hangarWithInput(anaFirst, [...words.slice(0, -1), replaced, '--password-stdin'], `${PASSWORD}\n`);
    expect(old.code).not.toBe(0);
    expect(old.stderr).toMatch(/not valid here/);
    const first = await hangarWithInput(
      anaFirst,
      [...words, '--password-stdin', '--device-name', 'ana-first'],
      `${PASSWORD}\n`,
    );
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/joined the team account as ana@example\.com/);
    expect(first.stdout).toMatch(
      /waiting for approval: on a computer already in the account run\s+hangar devices approve "ana-first"/,
    );
    expect(first.stdout).toMatch(CODE);
    const status = JSON.parse((await hangar(anaFirst, ['account', '--json'])).stdout) as {
      account: { email: string; device: { status: string } };
    };
    expect(status.account).toMatchObject({ email: 'ana@example.com', device: { status: 'pending' } });
    // Used once: the same line again (another computer) is refused (the relay forgot its hash).
    const twice = await hangarWithInput(dir('ana-again'), [...words, '--password-stdin'], `${PASSWORD}\n`);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/invitation is not valid here/);
    const desk = dir('ana-desk');
    const joined = await loginCli(desk, relay.url, 'ana@example.com', 'ana-desk');
    expect(joined.code, joined.stderr).toBe(0);
    const approved = await hangar(laptop, ['devices', 'approve', 'ana-desk', '--code', CODE.exec(joined.stdout)![1]!]);
    expect(approved.code, approved.stderr).toBe(0);
    await until(
      () => hangar(desk, ['session', 'ls', 'mini']),
      (r) => r.code === 0,
      "listing mini from Ana's desk",
    );
    expect((await teamLs(desk)).invites).toBeNull(); // a member does not see invitations

    // A member removes no one; the owner cannot remove themself; either way nothing changes.
    const byMember = await hangar(desk, ['team', 'rm', 'owner@example.com', '--yes']);
    expect(byMember.code).not.toBe(0);
    expect(byMember.stderr).toMatch(/owner/);
    const self = await hangar(laptop, ['team', 'rm', 'owner@example.com', '--yes']);
    expect(self.code).not.toBe(0);
    expect(self.stderr).toMatch(/cannot remove themself/);
    // Without a terminal to confirm on, and without --yes: refused.
    const unasked = await hangar(laptop, ['team', 'rm', 'ana@example.com']);
    expect(unasked.code).not.toBe(0);
    expect(unasked.stderr).toMatch(/--yes/);
    expect((await teamLs(laptop)).members.map((m) => m.email)).toEqual(['owner@example.com', 'ana@example.com']);

    const removed = await hangar(laptop, ['team', 'rm', 'ana@example.com', '--yes']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/removed ana@example\.com/);
    expect(removed.stdout).toMatch(/revoked "ana-desk": hosts refuse it/);
    expect(removed.stdout).toMatch(/revoked "ana-first"/);
    expect((await teamLs(laptop)).members.map((m) => m.email)).toEqual(['owner@example.com']);

    // Mini, which let the desk in, takes the owner's revocation (verified against the owner's key it
    // pinned): the desk's key is revoked there, not only at the relay, and the desk is refused.
    const deskKey = (await loadOrCreateDeviceKey(desk)).publicKeyHex;
    const revokedOnMini = () => {
      const db = new Database(join(mini.shell.agentData, 'agent.db'), { readonly: true });
      try {
        return (db.prepare('SELECT public_key FROM revoked_devices').all() as { public_key: string }[]).map(
          (row) => row.public_key,
        );
      } finally {
        db.close();
      }
    };
    const deadline = Date.now() + 15_000;
    while (!revokedOnMini().includes(deskKey)) {
      if (Date.now() > deadline) throw new Error(`mini never revoked the desk: ${mini.agent.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const refused = await until(
      () => hangar(desk, ['session', 'ls', 'mini']),
      (r) => r.code !== 0,
      "mini refusing Ana's desk",
    );
    expect(refused.stderr).not.toBe('');
    // The owner still reaches mini.
    expect((await hangar(laptop, ['session', 'ls', 'mini'])).code).toBe(0);
    const again = await loginCli(dir('ana-other'), relay.url, 'ana@example.com', 'ana-other');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/email or password/); // no hash of her password is kept to say more
  });
});
