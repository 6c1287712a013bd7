import { HangarError } from '@hangar/shared';
import type { Logger } from 'pino';
import type { TartCli } from './tart-cli.js';
import {
  ExecTransport,
  SshTransport,
  type GuestAccess,
  type GuestProbe,
  type GuestTransport,
  type SshSettings,
} from './tart-guest.js';

/** The one `tart exec` probe of 'auto' mode. A missing agent makes `tart exec` wait ~30 s (gRPC's default). */
export const EXEC_PROBE_TIMEOUT_MS = 10_000;
/** A liveness check of a warm or adopted VM. */
export const ALIVE_TIMEOUT_MS = 20_000;
export const TRUE = ['/usr/bin/true'];

export interface GuestAccessOptions {
  cli: TartCli;
  /** Named in errors: the image that lacks the guest agent or the key. */
  image: string;
  /** How jobs reach the guest (default 'auto'). */
  guestAccess?: GuestAccess;
  /** For 'ssh', and for 'auto' when the guest agent does not answer. */
  ssh?: SshSettings;
  /** Seconds of probes before a booted VM counts as broken. */
  readyTimeoutS?: number;
  /** Milliseconds of the one `tart exec` probe in 'auto' mode. */
  execProbeTimeoutMs?: number;
  logger?: Logger;
}

/** How a VM is reached: settled once when it boots, and again from its record when it is adopted. */
export class GuestConnector {
  constructor(private readonly options: GuestAccessOptions) {}

  /** The transport a warm VM was booted with (records from before SSH existed mean `tart exec`). */
  async adopted(record: { vm: string; access?: 'exec' | 'ssh'; ip?: string }): Promise<GuestTransport> {
    if (record.access !== 'ssh') return new ExecTransport(this.options.cli, record.vm);
    const ip = record.ip ?? (await this.options.cli.ip(record.vm, 5));
    return new SshTransport(this.sshSettings(record.vm), record.vm, ip);
  }

  /**
   * Settles how this VM is reached, once: 'exec' and 'ssh' poll their transport until it answers;
   * 'auto' tries `tart exec` once (it waits for an agent still starting, and gives up after the
   * probe timeout when there is none), then polls SSH instead.
   */
  async connect(name: string, ip: string): Promise<GuestTransport> {
    const mode = this.options.guestAccess ?? 'auto';
    const readyS = this.options.readyTimeoutS ?? 90;
    const deadline = Date.now() + readyS * 1000;
    const exec = new ExecTransport(this.options.cli, name);
    let agent: GuestProbe | undefined;
    if (mode === 'auto') {
      agent = await exec.probe(TRUE, this.options.execProbeTimeoutMs ?? EXEC_PROBE_TIMEOUT_MS);
      if (agent.exitCode === 0) return exec;
      this.options.logger?.info(
        { vm: name, exitCode: agent.exitCode, detail: agent.detail },
        'tart exec did not answer: using SSH',
      );
    }
    if (mode === 'exec') {
      const last = await poll(exec, deadline);
      if (last.exitCode === 0) return exec;
      throw new HangarError(
        'E_UNAVAILABLE',
        `VM ${name} booted but \`tart exec\` never answered (${last.detail || `exit ${last.exitCode}`}): does image ${this.options.image} run the Tart guest agent? Use guestAccess 'auto' or 'ssh' for images without it (hangar-agent doctor)`,
      );
    }
    const settings = this.sshSettings(name);
    const ssh = new SshTransport(settings, name, ip);
    const last = await poll(ssh, deadline);
    if (last.exitCode === 0) return ssh;
    const why = agent ? `the Tart guest agent did not answer (${agent.detail || `exit ${agent.exitCode}`}) and ` : '';
    throw new HangarError(
      'E_UNAVAILABLE',
      `VM ${name} booted but ${why}SSH as ${settings.user}@${ip} with key ${settings.key} failed for ${readyS} s: ${last.detail || `exit ${last.exitCode}`}. ` +
        `The image needs the key's public half in ~${settings.user}/.ssh/authorized_keys (see the tart executor's sshKey option) or the Tart guest agent (hangar-agent doctor)`,
    );
  }

  private sshSettings(vm: string): SshSettings {
    if (!this.options.ssh) {
      throw new HangarError(
        'E_UNAVAILABLE',
        `VM ${vm} needs SSH (its image ${this.options.image} has no Tart guest agent), but no SSH key is configured`,
      );
    }
    return this.options.ssh;
  }
}

/** Probes until the transport answers or the deadline passes; the last probe's result. */
async function poll(guest: GuestTransport, deadline: number): Promise<GuestProbe> {
  for (;;) {
    const left = deadline - Date.now();
    const result = await guest.probe(TRUE, Math.max(1_000, Math.min(ALIVE_TIMEOUT_MS, left)));
    if (result.exitCode === 0 || Date.now() > deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
