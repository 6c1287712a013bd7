import type { ListeningPort } from '@hangar/shared';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';

type Where = { procRoot?: string; lsof?: string };

/**
 * Which TCP ports something listens on, reachable through the host's loopback (bound to
 * 127.0.0.1, ::1 or a wildcard): the ports a preview could serve. Linux reads /proc; macOS
 * (and any system without /proc/net) asks lsof, which ships with macOS.
 */
export async function listeningPorts(options: Where = {}): Promise<ListeningPort[]> {
  return (await listeningSnapshot(options)).ports;
}

/** The ports, and their fingerprint (listeningFingerprint's) from the same reading. */
export async function listeningSnapshot(options: Where = {}): Promise<{ ports: ListeningPort[]; fingerprint: string }> {
  const procRoot = options.procRoot ?? '/proc';
  const fromProc = await readProcTables(procRoot);
  if (fromProc === undefined) {
    const found = await lsofListeners(options.lsof ?? 'lsof');
    return { ports: dedupe(found), fingerprint: JSON.stringify(found) };
  }
  const owners = await socketOwners(
    procRoot,
    new Set(fromProc.map((l) => l.inode).filter((inode): inode is string => inode !== undefined)),
  );
  const found = fromProc.map(({ port, address, inode }) => {
    const owner = inode !== undefined ? owners.get(inode) : undefined;
    return { port, address, pid: owner?.pid ?? null, process: owner?.process ?? null };
  });
  return { ports: dedupe(found), fingerprint: procFingerprint(fromProc) };
}

/**
 * A cheap fingerprint of what listens, to notice a dev server starting or stopping: /proc's two
 * tables without looking up owners (a few KB read); where there is no /proc, lsof's answer. Each
 * socket's inode is in it, so a dev server restarted on its port between two looks (another
 * process now) is a change too.
 */
export async function listeningFingerprint(options: Where = {}): Promise<string> {
  const fromProc = await readProcTables(options.procRoot ?? '/proc');
  if (fromProc === undefined) return JSON.stringify(await lsofListeners(options.lsof ?? 'lsof'));
  return procFingerprint(fromProc);
}

function procFingerprint(listeners: RawListener[]): string {
  return listeners
    .map((l) => `${l.address}:${l.port}:${l.inode}`)
    .sort()
    .join(' ');
}

interface RawListener {
  port: number;
  address: string;
  inode?: string;
  pid: number | null;
  process: string | null;
}

/** The listeners in /proc/net/tcp{,6}, owners not looked up; undefined without /proc (macOS). */
async function readProcTables(procRoot: string): Promise<RawListener[] | undefined> {
  // Only the real /proc's tables are kept open: a test's stand-in is files it may replace.
  const keepOpen = procRoot === '/proc';
  const tables = await Promise.all(
    ['tcp', 'tcp6'].map((name) => readListeningSection(`${procRoot}/net/${name}`, keepOpen)),
  );
  if (tables.every((table) => table === undefined)) return undefined;
  return tables.flatMap((text, i) => (text === undefined ? [] : parseProcNetTcp(text, i === 1)));
}

/** Bytes asked of a table at a time: more than the kernel gives per read (below). */
const TABLE_CHUNK = 8192;

/**
 * A read of a /proc/net table shorter than this was its last. The kernel (seq_file's
 * seq_read_iter) formats a read's lines into a buffer of one page (4 KiB or more; only a line
 * longer than the page makes it bigger) and returns when the next line would not fit, when the
 * caller asked for no more, or when the table ends: asked for TABLE_CHUNK, a read short of a
 * 4 KiB page by more than a line (150 bytes in tcp, under 300 in tcp6) means the table ended. The
 * read that would confirm it (0 bytes) is not free: the kernel walks its whole table of
 * connections again, every namespace's, to find none of ours after the last (~0.5 ms per read on
 * a machine with a few thousand TIME_WAIT sockets, for tcp6 on every look when IPv6 carries no
 * connection). A regular file (a test's fake /proc) reads short only at its end too.
 */
const LAST_READ_BELOW = 4096 - 512;

/**
 * The head of a /proc/net/tcp{,6} table, up to its first socket that is not listening. The kernel
 * prints the listening sockets first, then every other socket (connections, TIME_WAIT), formatting
 * only as many lines as a read asks for: a preview under load has thousands of connections, and
 * reading and splitting all of them on every look was most of the watch's cost.
 *
 * Reads go through the thread pool: the kernel's walk of its socket tables takes 2 ms here and
 * 24 ms with 1,000 listening sockets, which on the event loop would hold up every keystroke
 * (docs/benchmarks.md, "port watch"). The real /proc's two tables stay open (KeptTable) and each
 * look reads them again from offset 0, positionally: one pool operation per table on most looks,
 * where opening, reading and closing them was three, each a wake-up of the agent's main thread.
 */
async function readListeningSection(path: string, keepOpen: boolean): Promise<string | undefined> {
  if (!keepOpen) {
    let file;
    try {
      file = await open(path, 'r');
    } catch {
      return undefined;
    }
    try {
      return await readHead(file, Buffer.allocUnsafe(TABLE_CHUNK));
    } catch {
      return undefined;
    } finally {
      await file.close();
    }
  }
  let kept = keptTables.get(path);
  if (kept === undefined) {
    const opening = open(path, 'r').then(
      (file) => ({ file, buffer: Buffer.allocUnsafe(TABLE_CHUNK), busy: false }),
      () => undefined,
    );
    keptTables.set(path, opening);
    kept = opening;
  }
  const table = await kept;
  if (table === undefined) {
    // No such table (a kernel without IPv6): asked again next look, as when it was opened each time.
    if (keptTables.get(path) === kept) keptTables.delete(path);
    return undefined;
  }
  // Two looks at once (a listing while the watch looks) each need a buffer of their own.
  const buffer = table.busy ? Buffer.allocUnsafe(TABLE_CHUNK) : table.buffer;
  const own = !table.busy;
  if (own) table.busy = true;
  try {
    return await readHead(table.file, buffer);
  } catch {
    // The handle went bad: the next look opens the table again.
    if (keptTables.get(path) === kept) keptTables.delete(path);
    table.file.close().catch(() => undefined);
    return undefined;
  } finally {
    if (own) table.busy = false;
  }
}

/**
 * A /proc/net table kept open for the agent's life. Opened by the agent, so it shows the agent's
 * own network namespace, as /proc/net does (a symlink to /proc/self/net); O_CLOEXEC (Node's
 * default), so no child inherits it. A positional read at offset 0 of a seq_file starts its
 * iterator over (seq_read_iter), so each look sees the table as it is now.
 */
interface KeptTable {
  file: FileHandle;
  buffer: Buffer;
  busy: boolean;
}

const keptTables = new Map<string, Promise<KeptTable | undefined>>();

/** Reads `file` from offset 0 up to its first line that is not a listener (or its end). */
async function readHead(file: FileHandle, buffer: Buffer): Promise<string> {
  let text = '';
  /** Where the lines not yet looked at begin: past the header line, then past each complete line. */
  let unread = -1;
  /** Bytes read so far, where the next read begins: seq_file carries on from there (its read_pos). */
  let offset = 0;
  for (;;) {
    const { bytesRead } = await file.read(buffer, 0, buffer.length, offset);
    if (bytesRead === 0) return text;
    offset += bytesRead;
    text += buffer.toString('latin1', 0, bytesRead);
    if (bytesRead < LAST_READ_BELOW) return text;
    if (unread < 0) {
      const header = text.indexOf('\n');
      if (header < 0) continue;
      unread = header + 1;
    }
    const complete = text.lastIndexOf('\n') + 1;
    const lines = text.slice(unread, complete).split('\n');
    if (lines.some((line) => line.length > 0 && lineState(line) !== LISTEN)) return text.slice(0, complete);
    unread = Math.max(unread, complete);
  }
}

/** A table line's `st` column (the fourth). */
function lineState(line: string): string | undefined {
  return line.trim().split(/\s+/, 4)[3];
}

const LISTEN = '0A';

/** Lines of /proc/net/tcp{,6}: `sl local_address rem_address st … uid timeout inode …`. */
export function parseProcNetTcp(text: string, ipv6: boolean): RawListener[] {
  const listeners: RawListener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== LISTEN) continue;
    const [addressHex, portHex] = fields[1]!.split(':');
    if (!addressHex || !portHex) continue;
    const address = ipv6 ? procIpv6(addressHex) : procIpv4(addressHex);
    if (address === undefined || !reachableOnLoopback(address)) continue;
    listeners.push({ port: parseInt(portHex, 16), address, inode: fields[9]!, pid: null, process: null });
  }
  return listeners;
}

/** /proc prints an IPv4 address as one 32-bit word in host (little-endian) order. */
function procIpv4(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return undefined;
  const bytes = [6, 4, 2, 0].map((at) => parseInt(hex.slice(at, at + 2), 16));
  return bytes.join('.');
}

/** An IPv6 address is four such words. */
function procIpv6(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return undefined;
  const bytes: number[] = [];
  for (let word = 0; word < 4; word++) {
    const w = hex.slice(word * 8, word * 8 + 8);
    for (const at of [6, 4, 2, 0]) bytes.push(parseInt(w.slice(at, at + 2), 16));
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return bytes.slice(12).join('.'); // IPv4-mapped: ::ffff:a.b.c.d
  }
  if (bytes.every((b) => b === 0)) return '::';
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return '::1';
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

function reachableOnLoopback(address: string): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '0.0.0.0' || address === '::';
}

/** Longest the /proc scan for owners runs before it lets the event loop take a turn. */
const SCAN_SLICE_MS = 1;

interface Owner {
  pid: number;
  process: string;
}

/** A socket whose owner was not found (another user's process) is looked for again after this. */
const UNOWNED_RETRY_MS = 60_000;

/**
 * What earlier scans found, by inode (unique while the socket lives): the owner and the fd that
 * held the socket (checked again before use), or none found at that time.
 */
const knownOwners = new Map<string, { procRoot: string; owner?: Owner & { fd: string }; lookedAt: number }>();

/**
 * inode → the process holding the socket, from /proc/<pid>/fd links (`socket:[inode]`). Only
 * processes this user may inspect are seen; the rest stay unnamed.
 *
 * The watch runs this whenever a port opens or closes anywhere on the machine, and a machine has
 * a few hundred processes and a thousand fds or more: read through the thread pool (a worker and
 * a callback on the loop per link) that was ~100 ms of CPU each time here, competing with
 * keystrokes on a small machine. procfs answers from memory, so it is read synchronously, in
 * slices of SCAN_SLICE_MS with a turn of the loop between them (a keystroke waits at most one
 * slice); only sockets not seen before are looked for, and the scan stops once they are found.
 */
async function socketOwners(procRoot: string, inodes: Set<string>): Promise<Map<string, Owner>> {
  const owners = new Map<string, Owner>();
  const now = performance.now();
  const wanted = new Set<string>();
  for (const inode of knownOwners.keys()) if (!inodes.has(inode)) knownOwners.delete(inode);
  for (const inode of inodes) {
    const known = knownOwners.get(inode);
    const owner = known?.procRoot === procRoot ? known.owner : undefined;
    if (owner && linkTarget(`${procRoot}/${owner.pid}/fd/${owner.fd}`) === `socket:[${inode}]`) {
      owners.set(inode, { pid: owner.pid, process: owner.process });
    } else if (known?.procRoot !== procRoot || owner || now - known.lookedAt >= UNOWNED_RETRY_MS) {
      wanted.add(inode);
    }
  }
  if (wanted.size === 0) return owners;
  let pids: string[];
  try {
    // Newest first: a port that just started listening is most often held by a process that just
    // started (the highest pids), which a scan in pid order reached last, after every fd of the
    // machine (~15 ms of CPU here, on each dev server or test server that opened a port).
    pids = readdirSync(procRoot)
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
  } catch {
    return owners;
  }
  let sliceStart = performance.now();
  const ownUid = process.getuid?.();
  for (const pid of pids) {
    // Another user's process: its fds cannot be read (a stat says so without a failed readdir).
    if (
      ownUid !== undefined &&
      ownUid !== 0 &&
      statSync(`${procRoot}/${pid}`, { throwIfNoEntry: false })?.uid !== ownUid
    ) {
      continue;
    }
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${pid}/fd`);
    } catch {
      continue; // gone, or another user's
    }
    for (const fd of fds) {
      if (performance.now() - sliceStart >= SCAN_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      const target = fdTarget(`${procRoot}/${pid}/fd/${fd}`);
      // Whether a process's fds may be read is decided for the process (ptrace's rule: another
      // user namespace, a non-dumpable or setuid process), so one refusal stands for all its fds.
      // Here one such process held a quarter of the machine's fds, each read failing.
      if (target === EACCES) break;
      const inode = target === undefined ? undefined : /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode === undefined || !wanted.has(inode)) continue;
      const holder = oldestHolder(procRoot, { pid, fd }, target as string);
      const owner = { pid: Number(holder.pid), process: processName(procRoot, holder.pid) };
      owners.set(inode, owner);
      wanted.delete(inode);
      knownOwners.set(inode, { procRoot, owner: { ...owner, fd: holder.fd }, lookedAt: now });
      if (wanted.size === 0) return owners;
    }
  }
  for (const inode of wanted) knownOwners.set(inode, { procRoot, lookedAt: now });
  return owners;
}

/**
 * The process named for a socket found at `found`: the top of the line of its ancestors that hold
 * the socket too (a server that handed its socket to a child, a service manager that passed it on:
 * each holds it from the parent it came from), else `found` itself. That is the process that
 * opened it, which a scan in pid order found first; reading stops at the first parent without it.
 */
function oldestHolder(
  procRoot: string,
  found: { pid: string; fd: string },
  target: string,
): { pid: string; fd: string } {
  let holder = found;
  const seen = new Set([found.pid]);
  for (let at = parentOf(procRoot, found.pid); at !== undefined && !seen.has(at); at = parentOf(procRoot, at)) {
    seen.add(at);
    const fd = fdHolding(procRoot, at, target);
    if (fd === undefined) break;
    holder = { pid: at, fd };
  }
  return holder;
}

/** The parent's pid (the fourth field of /proc/<pid>/stat, after the command in parentheses). */
function parentOf(procRoot: string, pid: string): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
  return ppid !== undefined && /^[1-9]\d*$/.test(ppid) ? ppid : undefined;
}

/** The fd of process `pid` that is `target` (`socket:[inode]`), if it holds it and may be read. */
function fdHolding(procRoot: string, pid: string, target: string): string | undefined {
  let fds: string[];
  try {
    fds = readdirSync(`${procRoot}/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    const seen = fdTarget(`${procRoot}/${pid}/fd/${fd}`);
    if (seen === EACCES) return undefined;
    if (seen === target) return fd;
  }
  return undefined;
}

function linkTarget(path: string): string {
  const target = fdTarget(path);
  return typeof target === 'string' ? target : '';
}

const EACCES = Symbol('EACCES');

/** Where an fd link points; EACCES when the process's fds may not be read, undefined if gone. */
function fdTarget(path: string): string | typeof EACCES | undefined {
  try {
    return readlinkSync(path);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EACCES' ? EACCES : undefined;
  }
}

/** The command line, shortened: `node …/vite` says more than `node`. */
function processName(procRoot: string, pid: string): string {
  const read = (name: string) => {
    try {
      return readFileSync(`${procRoot}/${pid}/${name}`, 'utf8');
    } catch {
      return undefined;
    }
  };
  const args = (read('cmdline') ?? '').split('\0').filter((arg) => arg.length > 0);
  if (args.length === 0) return (read('comm') ?? '?').trim();
  return shortCommand(args);
}

function shortCommand(args: string[]): string {
  const [program, ...rest] = args.map((arg, i) => (i === 0 || arg.includes('/') ? basename(arg) : arg));
  return [program, ...rest].join(' ').slice(0, 256);
}

/**
 * `lsof -nP -iTCP -sTCP:LISTEN -F pctn`: one field per line, tagged by its first character
 * (p pid, c command, t IPv4/IPv6, n address:port; `*` is the wildcard, IPv6 in brackets).
 */
export function parseLsof(text: string): RawListener[] {
  const listeners: RawListener[] = [];
  let pid: number | null = null;
  let command: string | null = null;
  let type = '';
  for (const line of text.split('\n')) {
    const tag = line[0];
    const value = line.slice(1);
    if (tag === 'p') {
      pid = Number(value) || null;
      command = null;
    } else if (tag === 'c') command = value;
    else if (tag === 't') type = value;
    else if (tag === 'n') {
      const match = /^(\*|\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)$/.exec(value);
      if (!match) continue;
      let address = match[1]!.replace(/^\[|\]$/g, '');
      if (address === '*') address = type === 'IPv6' ? '::' : '0.0.0.0';
      if (!reachableOnLoopback(address)) continue;
      listeners.push({ port: Number(match[2]), address, pid, process: command });
    }
  }
  return listeners;
}

function lsofListeners(lsof: string): Promise<ListeningPort[]> {
  return new Promise((resolve) => {
    execFile(lsof, ['-nP', '-iTCP', '-sTCP:LISTEN', '-F', 'pctn'], { timeout: 5000 }, (error, stdout) => {
      // lsof exits 1 when nothing matched; its output is still the answer. Missing lsof: none known.
      if (error && typeof error.code !== 'number') resolve([]);
      else resolve(parseLsof(stdout));
    });
  });
}

/** One entry per port: a server on 127.0.0.1 and ::1 both is one preview candidate. */
function dedupe(listeners: ListeningPort[]): ListeningPort[] {
  const byPort = new Map<number, ListeningPort>();
  for (const listener of listeners) {
    const seen = byPort.get(listener.port);
    if (!seen || (seen.pid === null && listener.pid !== null)) byPort.set(listener.port, listener);
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}
