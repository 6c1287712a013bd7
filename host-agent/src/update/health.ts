import { HangarError, parseHostAddress } from '@hangar/shared';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { processAlive, readRunFile, type RunFile } from '../service/run-file.js';

/** How long an updated agent has to answer before it is rolled back (issue 14). */
export const HEALTH_TIMEOUT_MS = 30_000;
const POLL_MS = 200;
const SERVICE_CHECK_MS = 1_000;

export interface HealthExpectation {
  dataDir: string;
  /** The version that must be answering (the one just switched to). */
  version: string;
  /** The pid of the agent that was stopped: the one answering must be another process. */
  notPid?: number;
  timeoutMs?: number;
  /**
   * Set when the host must also be online on its relay (enrolled, and online before the restart):
   * whether the agent process `pid` holds its relay link up, and else what it shows.
   */
  relayPresence?: (pid: number) => { online: boolean; detail: string };
  /**
   * Asked about once a second: a reason when the service manager has given up on the service
   * (systemd: failed, after its restart limit), so a broken release is rolled back without
   * waiting out the whole timeout.
   */
  serviceGaveUp?: () => Promise<string | undefined>;
}

export interface Healthy {
  run: RunFile;
  /** Milliseconds from the start of the wait until the agent answered (and was online on its relay). */
  answeredAfterMs: number;
  /** When the relay was waited for: where the host is online. */
  relay?: string;
}

/**
 * Waits until the agent answers locally: its run file names a live process of the expected
 * version (and not the old pid), and a TLS handshake with its address presents the certificate
 * in its data dir — the one devices pinned, so it is this agent and not another on the port. With
 * `relayPresence`, that process must also hold its relay link up. Rejects with E_TIMEOUT saying what
 * was last seen.
 */
export async function waitForHealthy(expect: HealthExpectation): Promise<Healthy> {
  const started = Date.now();
  const deadline = started + (expect.timeoutMs ?? HEALTH_TIMEOUT_MS);
  let lastSeen = 'no run file yet (the agent has not started listening)';
  let nextServiceCheck = started + SERVICE_CHECK_MS;
  while (Date.now() < deadline) {
    const run = readRunFile(expect.dataDir);
    if (run) {
      if (run.pid === expect.notPid) lastSeen = `still the old agent (pid ${run.pid})`;
      else if (!processAlive(run.pid)) lastSeen = `agent pid ${run.pid} (version ${run.version}) exited`;
      else if (run.version !== expect.version)
        lastSeen = `version ${run.version} answering, expected ${expect.version}`;
      else {
        const problem = await handshakeProblem(expect.dataDir, run.address, deadline - Date.now());
        if (!problem) {
          const relay = expect.relayPresence?.(run.pid);
          if (relay === undefined || relay.online) {
            return { run, answeredAfterMs: Date.now() - started, ...(relay ? { relay: relay.detail } : {}) };
          }
          lastSeen = relay.detail;
        } else lastSeen = problem;
      }
    }
    if (expect.serviceGaveUp && Date.now() >= nextServiceCheck) {
      nextServiceCheck = Date.now() + SERVICE_CHECK_MS;
      const reason = await expect.serviceGaveUp();
      if (reason) throw new HangarError('E_UNAVAILABLE', `the agent did not start: ${reason}; ${lastSeen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new HangarError(
    'E_TIMEOUT',
    `the agent did not answer within ${Math.round((expect.timeoutMs ?? HEALTH_TIMEOUT_MS) / 1000)} s: ${lastSeen}`,
  );
}

/** Undefined when a TLS handshake with the agent shows its own certificate; else what went wrong. */
export async function handshakeProblem(
  dataDir: string,
  address: string,
  timeoutMs = 5_000,
): Promise<string | undefined> {
  const certFile = join(dataDir, 'identity', 'tls.crt');
  if (!existsSync(certFile)) return `no certificate at ${certFile} yet`;
  const pinned = new X509Certificate(readFileSync(certFile)).fingerprint256;
  const parsed = parseHostAddress(address, { allowAnyPort: true });
  if (!parsed) return `the run file's address ${address} is not host:port`;
  // An agent on every interface answers on loopback too.
  const host = parsed.host === '0.0.0.0' ? '127.0.0.1' : parsed.host === '::' ? '::1' : parsed.host;
  return new Promise((resolve) => {
    const socket = connect({ host, port: parsed.port, rejectUnauthorized: false, timeout: Math.max(100, timeoutMs) });
    const done = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.once('secureConnect', () => {
      const seen = socket.getPeerX509Certificate()?.fingerprint256;
      done(seen === pinned ? undefined : `${address} presented another certificate (${seen ?? 'none'})`);
    });
    socket.once('timeout', () => done(`no TLS handshake from ${address} in time`));
    socket.once('error', (error) => done(`${address}: ${error.message}`));
  });
}
