import { TURN_TTL_MS, type TurnConfig } from './turn.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { HangarError, parseHostAddress, relayOrigin, toHangarError } from '@hangar/shared';
import { DEFAULT_PASSWORD_COST } from './accounts/passwords.js';
import { billingFromFlags, type BillingFlags } from './billing/flags.js';
import { runDoctor } from './doctor.js';
import { AuditLog } from './ops/audit.js';
import { startRelay } from './server.js';
import { DEFAULT_SPLICE_LIMITS } from './sockets/splice.js';
import { openStore, type StorageConfig } from './store/db.js';
import { RELAY_VERSION } from './version.js';

const DEFAULT_DATA = join(homedir(), '.hangar-relay');

interface StorageOptions {
  data?: string;
  database?: string;
}

interface ServeOptions extends StorageOptions, BillingFlags {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  publicUrl?: string;
  oidcIssuer?: string;
  oidcClientId?: string;
  trustProxy?: boolean;
  passwordHashCost: number;
  rateLimitScale: number;
  spliceRate: number;
  spliceMax: number;
  spliceIdle: number;
  installScript?: string;
  turn?: string[];
  turnSecretFile?: string;
  turnTtl: number;
  metricsTokenFile?: string;
}

const program = new Command('hangar-relay')
  .description('the Hangar relay: accounts, device and host keys, enrollment, presence and signaling')
  .version(RELAY_VERSION)
  .showHelpAfterError('(run with --help for usage)');

function storageOptions(command: Command): Command {
  return command
    .option('--data <dir>', `SQLite: the data directory (default ${DEFAULT_DATA})`)
    .option(
      '--database <url>',
      'PostgreSQL: postgres://user:pass@host/db (or $HANGAR_RELAY_DATABASE, which keeps the password out of ps)',
    );
}

/** Stripe's settings (all five, or none: billing off) and the tests' knobs. */
function billingOptions(command: Command): Command {
  return command
    .option('--stripe-secret-key-file <file>', 'billing: a file holding the Stripe secret key (sk_… or rk_…)')
    .option(
      '--stripe-webhook-secret-file <file>',
      "billing: a file holding the webhook endpoint's signing secret (whsec_…)",
    )
    .option('--stripe-price-pro <price>', 'billing: the Stripe price of Pro ($20/month)')
    .option('--stripe-price-team <price>', 'billing: the Stripe price of Team ($200/month)')
    .option(
      '--stripe-meter-event-name <name>',
      'billing: the event name of the Billing Meter that counts build minutes',
    )
    .option(
      '--stripe-price-pro-overage <price>',
      "billing: Pro's metered per-minute price on that meter (else minutes past 300 are refused)",
    )
    .addOption(new Option('--stripe-api <url>', "Stripe's API address (tests point it at a stand-in)").hideHelp())
    .addOption(
      new Option('--billing-minute-ms <ms>', 'length of a billed minute (tests)')
        .argParser(intIn(1, 3_600_000))
        .hideHelp(),
    );
}

function storage(options: StorageOptions): StorageConfig {
  const url = options.database ?? process.env['HANGAR_RELAY_DATABASE'];
  if (url !== undefined && options.data !== undefined) {
    fail(new HangarError('E_BAD_REQUEST', 'give --data (SQLite) or --database (PostgreSQL), not both'));
  }
  if (url !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      fail(new HangarError('E_BAD_REQUEST', '--database: expected a postgres:// URL'));
    }
    return { kind: 'postgres', url };
  }
  return { kind: 'sqlite', dataDir: resolve(options.data ?? DEFAULT_DATA) };
}

billingOptions(storageOptions(program.command('serve').description('serve the relay API and sockets')))
  .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8443')
  .option('--tls-cert <file>', 'serve HTTPS/WSS with this certificate (PEM)')
  .option('--tls-key <file>', 'and this private key (PEM)')
  .option('--public-url <url>', 'the URL clients use (behind a proxy): proofs must name this origin')
  .option('--oidc-issuer <url>', 'allow sign-in with this OpenID Connect provider')
  .option('--oidc-client-id <id>', "the relay's client id at that provider (the ID token's aud)")
  .option('--trust-proxy', 'behind a reverse proxy: client address and scheme from X-Forwarded-*')
  .option('--password-hash-cost <log2N>', 'scrypt cost for new password hashes', intIn(10, 20), DEFAULT_PASSWORD_COST)
  .option('--rate-limit-scale <n>', 'multiply every rate limit (big NATs, benchmarks)', intIn(1, 100_000), 1)
  .option(
    '--splice-rate <bytes>',
    'relayed links: bytes per second per account, both directions together',
    intIn(1024, 2 ** 40),
    DEFAULT_SPLICE_LIMITS.bytesPerSecond,
  )
  .option('--splice-max <n>', 'relayed links open at once per account', intIn(1, 10_000), DEFAULT_SPLICE_LIMITS.maxOpen)
  .option(
    '--splice-idle <seconds>',
    'relayed links: close one that carried nothing for this long',
    intIn(5, 86_400),
    DEFAULT_SPLICE_LIMITS.idleMs / 1000,
  )
  .option(
    '--install-script <file>',
    "the host-agent installer served at /install.sh (default: the checkout's build/install/install.sh)",
  )
  .option(
    '--turn <uri>',
    'a TURN server beside the relay (turn:HOST:3478, turns:HOST:5349; repeat for more); needs --turn-secret-file',
    (uri: string, previous: string[] = []) => [...previous, uri],
  )
  .option('--turn-secret-file <file>', "a file holding coturn's static-auth-secret (use-auth-secret)")
  .option(
    '--turn-ttl <seconds>',
    'how long TURN credentials last (they cannot be revoked: a removed host keeps its until then)',
    intIn(2, 3_600),
    TURN_TTL_MS / 1000,
  )
  .option(
    '--metrics-token-file <file>',
    'a file holding a bearer token that opens /metrics from anywhere (else only from this host)',
  )
  .action(async (options: ServeOptions) => {
    const listen = parseHostAddress(options.listen, { allowAnyPort: true });
    const turn = turnFromFlags(options);
    const metricsToken = secretFromFile('--metrics-token-file', options.metricsTokenFile);
    if (!listen)
      fail(new HangarError('E_BAD_REQUEST', `--listen ${options.listen}: expected host:port, e.g. 0.0.0.0:8443`));
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
      fail(new HangarError('E_BAD_REQUEST', '--tls-cert and --tls-key go together'));
    }
    if ((options.oidcIssuer === undefined) !== (options.oidcClientId === undefined)) {
      fail(new HangarError('E_BAD_REQUEST', '--oidc-issuer and --oidc-client-id go together'));
    }
    if (options.publicUrl !== undefined) relayOrigin(options.publicUrl);
    try {
      const relay = await startRelay({
        listen: listen!,
        storage: storage(options),
        ...(options.tlsCert && options.tlsKey
          ? { tls: { cert: readFileSync(options.tlsCert), key: readFileSync(options.tlsKey) } }
          : {}),
        ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
        ...(options.oidcIssuer && options.oidcClientId
          ? { oidc: { issuer: options.oidcIssuer, clientId: options.oidcClientId } }
          : {}),
        trustProxy: options.trustProxy === true,
        billing: billingFromFlags(options),
        passwordCost: options.passwordHashCost,
        rateLimitScale: options.rateLimitScale,
        splice: {
          bytesPerSecond: options.spliceRate,
          maxOpen: options.spliceMax,
          idleMs: options.spliceIdle * 1000,
        },
        ...(options.installScript !== undefined ? { installScript: resolve(options.installScript) } : {}),
        ...(turn ? { turn } : {}),
        ...(metricsToken !== undefined ? { metricsToken } : {}),
      });
      // One JSON line on stdout: scripts and tests read where it listens.
      process.stdout.write(JSON.stringify({ event: 'listening', url: relay.url, replica: relay.replicaId }) + '\n');
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        Promise.resolve(relay.dispose()).then(
          () => process.exit(0),
          (error: unknown) => {
            process.stderr.write(`hangar-relay: error while stopping: ${toHangarError(error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    } catch (error) {
      fail(error);
    }
  });

storageOptions(program.command('migrate').description('create or update the database schema, then exit')).action(
  async (options: StorageOptions) => {
    try {
      const store = await openStore(storage(options));
      await store.dispose();
      process.stdout.write(`database is up to date (${store.description})\n`);
    } catch (error) {
      fail(error);
    }
  },
);

billingOptions(
  storageOptions(
    program
      .command('doctor')
      .description('check the database, schema, keys, TLS files, OIDC provider and billing mode'),
  ),
)
  .option('--tls-cert <file>')
  .option('--tls-key <file>')
  .option('--oidc-issuer <url>')
  .action(
    async (options: StorageOptions & BillingFlags & { tlsCert?: string; tlsKey?: string; oidcIssuer?: string }) => {
      const ok = await runDoctor(storage(options), options, (line) => process.stdout.write(line + '\n'));
      process.exit(ok ? 0 : 1);
    },
  );

storageOptions(program.command('audit').description('print the audit log, newest first'))
  .option('--account <email>', 'only this account')
  .option('--limit <n>', 'how many entries', intIn(1, 100_000), 100)
  .option('--json', 'one JSON object per line')
  .action(async (options: StorageOptions & { account?: string; limit: number; json?: boolean }) => {
    try {
      const store = await openStore(storage(options), { create: false });
      try {
        let accountId: string | undefined;
        if (options.account !== undefined) {
          const email = options.account.toLowerCase();
          const row = await store.db.selectFrom('accounts').select('id').where('email', '=', email).executeTakeFirst();
          if (row === undefined) {
            throw new HangarError(
              'E_NOT_FOUND',
              `no account for ${email} in ${store.description}: check the email, or leave out --account for every account's entries`,
            );
          }
          accountId = row.id;
        }
        const entries = await new AuditLog(store.db, Date.now).list({
          limit: options.limit,
          ...(accountId !== undefined ? { accountId } : {}),
        });
        for (const entry of entries) {
          process.stdout.write(
            options.json
              ? JSON.stringify(entry) + '\n'
              : `${new Date(entry.at).toISOString()}  ${entry.action.padEnd(22)} ${entry.actor.padEnd(42)} ${entry.ip ?? '-'}  ${JSON.stringify(entry.detail)}\n`,
          );
        }
      } finally {
        await store.dispose();
      }
    } catch (error) {
      fail(error);
    }
  });

/** --turn and --turn-secret-file, checked: URIs node-datachannel can use, and a secret that is there. */
function turnFromFlags(options: ServeOptions): TurnConfig | undefined {
  const urls = options.turn ?? [];
  if (urls.length === 0 && options.turnSecretFile === undefined) return undefined;
  if (urls.length === 0 || options.turnSecretFile === undefined) {
    fail(new HangarError('E_BAD_REQUEST', '--turn and --turn-secret-file go together'));
  }
  for (const uri of urls) {
    if (!/^turns?:(\[[0-9a-fA-F:.]+\]|[^:?/\s]+)(:\d{1,5})?(\?transport=(udp|tcp))?$/.test(uri)) {
      fail(new HangarError('E_BAD_REQUEST', `--turn ${uri}: expected turn:HOST:3478 or turns:HOST:5349`));
    }
  }
  return { urls, secret: secretFromFile('--turn-secret-file', options.turnSecretFile)!, ttlMs: options.turnTtl * 1000 };
}

/** A secret kept in a file (out of ps and shell history): read, trimmed, at least 16 characters. */
function secretFromFile(flag: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let secret: string;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch (error) {
    fail(new HangarError('E_BAD_REQUEST', `${flag} ${file}: ${(error as Error).message}`));
  }
  if (secret.length < 16) {
    fail(new HangarError('E_BAD_REQUEST', `${flag} ${file}: the secret must be at least 16 characters`));
  }
  return secret;
}

function intIn(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer ${min}-${max}`);
    return n;
  };
}

function fail(error: unknown): never {
  const hangarError = toHangarError(error);
  process.stderr.write(`hangar-relay: ${hangarError.message}\n`);
  process.exit(hangarError.code === 'E_BAD_REQUEST' ? 2 : 1);
}

await program.parseAsync(process.argv);
