import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * What the core API's tables are, as one short string: a hash of @hangar/shared's protocol
 * modules (every schema of CORE_PROCEDURES and CORE_EVENTS is in them, and ERROR_CODES). A core
 * says it in its door greeting; a hangar command bundled from the same tables (build/cli-bundle
 * puts the same hash in at build time) then trusts that core's checks of params, results and
 * events, and loads no schema of its own (issue 18). Any other command checks everything.
 * `sharedDist`: shared's dist directory (default: the one this process loads). Undefined when its
 * files cannot be read.
 */
export function protocolFingerprint(sharedDist?: string): string | undefined {
  try {
    return fingerprintOf(sharedDist ?? dirname(fileURLToPath(import.meta.resolve('@hangar/shared'))));
  } catch {
    // shared's built modules are not where they should be (a test run from sources): no promise made.
    return undefined;
  }
}

function fingerprintOf(sharedDist: string): string {
  const hash = createHash('sha256');
  const protocol = join(sharedDist, 'protocol');
  const files = [
    join(sharedDist, 'errors.js'),
    ...readdirSync(protocol)
      .filter((name) => name.endsWith('.js'))
      .sort()
      .map((name) => join(protocol, name)),
  ];
  for (const file of files) {
    hash.update(file.slice(sharedDist.length)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex').slice(0, 32);
}
