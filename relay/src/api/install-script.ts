import type { FastifyInstance } from 'fastify';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HangarError } from '@hangar/shared';
import type { RelayContext } from '../context.js';
import { sendError } from './routes.js';

/**
 * `GET /install.sh`: the host-agent installer (build/install/install.sh), byte for byte, for the
 * line the app's "Enroll a host" dialog shows: `curl -fsSL https://<relay>/install.sh | sh -s --
 * --token hgr1_…`. The script is the same for every user (the token carries the relay's URL), so
 * it is read once at start and served as it was read.
 */
export interface InstallScript {
  file: string;
  bytes: Buffer;
  /** A strong ETag of the bytes: `no-cache` makes clients revalidate, and a new relay release is seen at once. */
  etag: string;
}

/** An installer is a few KiB; anything this big is the wrong file. */
const MAX_BYTES = 1024 * 1024;

/**
 * build/install/install.sh of the checkout the relay runs from (this file is relay/src/api or
 * relay/dist/api, three levels under the repository root). A relay deployed elsewhere is given
 * the script with --install-script.
 */
export function checkoutInstallScript(): string {
  return fileURLToPath(new URL('../../../build/install/install.sh', import.meta.url));
}

/**
 * Reads the script. A file given explicitly must exist (the relay refuses to start otherwise);
 * the checkout's default may be missing, and then `/install.sh` answers 404 saying what to pass.
 */
export function loadInstallScript(file: string | undefined): InstallScript | undefined {
  const path = file ?? checkoutInstallScript();
  if (!existsSync(path)) {
    if (file === undefined) return undefined;
    throw new HangarError('E_BAD_REQUEST', `--install-script ${file}: no such file`);
  }
  if (statSync(path).size > MAX_BYTES) {
    throw new HangarError('E_BAD_REQUEST', `--install-script ${path}: over 1 MiB, not an install script`);
  }
  const bytes = readFileSync(path);
  const etag = `"sha256-${createHash('sha256').update(bytes).digest('base64url')}"`;
  return { file: path, bytes, etag };
}

export function registerInstallScript(
  app: FastifyInstance,
  ctx: RelayContext,
  script: InstallScript | undefined,
): void {
  app.get('/install.sh', async (request, reply) => {
    if (script === undefined) {
      return sendError(
        ctx,
        reply,
        new HangarError(
          'E_NOT_FOUND',
          'this relay has no install script to serve: start it with --install-script <path to install.sh> ' +
            '(build/install/install.sh in the Hangar repository)',
        ),
      );
    }
    reply.header('cache-control', 'no-cache').header('etag', script.etag).header('x-content-type-options', 'nosniff');
    const known = (request.headers['if-none-match'] ?? '').split(',').map((tag) => tag.trim());
    if (known.includes(script.etag) || known.includes('*')) return reply.code(304).send();
    return reply.code(200).type('text/x-shellscript; charset=utf-8').send(script.bytes);
  });
}
