import { HangarError, shellQuote, type CORE_PROCEDURES, type ProcedureHandlers } from '@hangar/shared';
import { settleHostTrust } from '../relay/host-trust.js';
import type { ApiContext } from './handlers.js';

type AccountMethod = Extract<
  keyof typeof CORE_PROCEDURES,
  `account.${string}` | `devices.${string}` | 'hosts.enroll_token'
>;

/** `value` as one word for /bin/sh: bare when nothing in it is special (a URL, an email), else quoted. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9@%+=:,./_-]+$/.test(value) ? value : shellQuote(value);
}

/** Where `hangar-agent enroll` keeps its data unless told otherwise: the line names it so that serve finds it. */
const AGENT_DATA = '~/.hangar-agent';

/**
 * The account calls of CORE_PROCEDURES (relay/PROTOCOL.md): the core talks to the relay and signs
 * with this computer's key; clients see statuses, devices and the line to paste, never a token.
 */
export const accountHandlers: Pick<ProcedureHandlers<typeof CORE_PROCEDURES, ApiContext>, AccountMethod> = {
  'account.signup': async (params, { core }) => ({ result: await core.account.signUp(params) }),

  'account.login': async (params, { core }) => ({ result: await core.account.logIn(params) }),

  'account.join': async (params, { core }) => ({ result: await core.account.join(params) }),

  'account.logout': async (_params, { core }) => ({ result: await core.account.logOut() }),

  'account.status': async (_params, { core }) => {
    // The hangar command's core has no socket: ask the relay now (this device may have been approved).
    if (core.account.stored() !== undefined && core.account.reachState !== 'connected') {
      await core.devices.list({ timeoutMs: 3_000 }).catch((error: unknown) => {
        core.logger.debug({ err: error }, 'account.status: the relay did not answer');
      });
    }
    return { result: core.account.status() };
  },

  'account.billing': async (_params, { core }) => ({ result: await core.account.call('billing.status', {}) }),

  // The relay makes the Stripe session; only its URL reaches the client, which opens it.
  'account.checkout': async (params, { core }) => ({
    result: await core.account.call('billing.checkout', { plan: params.plan }),
  }),

  'account.portal': async (_params, { core }) => ({ result: await core.account.call('billing.portal', {}) }),

  'hosts.enroll_token': async (params, { core }) => {
    // The new host will trust this computer first: it vouches for the one that approved it now, so
    // that computer gets in too (relay/PROTOCOL.md "Trust follows the chain"); the first link tries again.
    await settleHostTrust(core.account).catch((error: unknown) =>
      core.logger.warn({ err: error }, 'could not vouch for the computer that approved this one'),
    );
    const made = await core.account.enrollToken(params.name);
    // --name carries the name typed here: the relay names the host from what the agent sends.
    const { relay_url: relayUrl, ...token } = made;
    const command = `hangar-agent enroll --data ${AGENT_DATA} --name ${params.name} --token ${made.token}`;
    // A machine without the agent: the relay serves the installer, which installs it as a service
    // and enrolls it with the same token (hangar-agent install --token).
    const install_command = `curl -fsSL ${relayUrl}/install.sh | sh -s -- --name ${params.name} --token ${made.token}`;
    return { result: { name: params.name, ...token, command, install_command } };
  },

  'devices.list': async (_params, { core }) => ({ result: { devices: await core.devices.list() } }),

  'devices.approve': async (params, { core }) => ({
    result: { device: await core.devices.approve(params.device, params.code) },
  }),

  'devices.revoke': async (params, { core }) => ({ result: { device: await core.devices.revoke(params.device) } }),

  // Team (relay/PROTOCOL.md "Team members"): the relay decides who may; a member sees no invitations.
  'account.team': async (_params, { core }) => {
    const { members } = await core.account.call('account.members', {});
    const invites = await core.account.call('account.invites', {}).then(
      (listed) => listed.invites,
      (error: unknown) => {
        if (error instanceof HangarError && error.code === 'E_FORBIDDEN') return null;
        throw error;
      },
    );
    return { result: { members, invites } };
  },

  'account.invite': async (params, { core }) => {
    const invite = await core.account.call('account.invite', params);
    const relay = core.account.stored()!.relay_url;
    const join_command = `hangar team join --relay ${shellWord(relay)} --email ${shellWord(invite.email)} ${invite.invite_token}`;
    return { result: { ...invite, join_command } };
  },

  'account.withdraw_invite': async (params, { core }) => ({
    result: await core.account.call('account.withdraw_invite', params),
  }),

  'account.remove_member': async (params, { core }) => ({ result: await core.devices.removeMember(params.email) }),
};
