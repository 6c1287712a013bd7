import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError, toHangarError } from '@hangar/shared';
import type { TartCli, TartRunProcess } from './tart-cli.js';
import { SshTransport, type GuestTransport } from './tart-guest.js';
import { ALIVE_TIMEOUT_MS, GuestConnector, TRUE, type GuestAccessOptions } from './tart-guest-access.js';
import { SlotRecords, type SlotRecord } from './tart-slot-records.js';
import type { TimingPhase } from './types.js';

/** VM names we own: `hangar-<slot>-<uuid>`, unique per VM because `tart clone` replaces silently. */
export const VM_PREFIX = 'hangar-';
/** Apple's macOS licence and Virtualization.framework allow two macOS guests per Mac. */
export const MAX_MACOS_VMS = 2;
/** Every slot mounts its one directory under this share name (`--dir=hangar:<slot dir>`). */
export const SHARE_NAME = 'hangar';
/** How long a VM's `tart run` may take to exit once `tart stop` returned (or we killed it). */
const RUN_EXIT_MS = 30_000;
/**
 * After a teardown gave up on a VM that would not go off: `tart list` is asked again whether an
 * adopted VM is off (ours is watched through its `tart run`'s exit instead), first after
 * RECHECK_MS, then twice as long each time up to RECHECK_MAX_MS, for OFF_CHECK_FOR_MS in all (a
 * dozen checks, not one every 5 s for an hour); then a warning says what to do and the slot stays
 * out of use until a job waiting for a slot finds the VM off (Slot.recheck) or the agent restarts
 * (its start deletes leftover VMs).
 */
const RECHECK_MS = 5_000;
const RECHECK_MAX_MS = 60_000;
const OFF_CHECK_FOR_MS = 10 * 60_000;

/** How jobs reach the guest (cli, image, guest access, ssh, probe timeouts, logger) and the pool's own settings. */
export interface TartPoolOptions extends GuestAccessOptions {
  /** `<data>/tart/slots`: one shared directory per slot, and a record of what each slot holds. */
  slotsDir: string;
  /** Pre-booted VMs kept ready (0–2). */
  warmSize: number;
  /** Seconds for `tart ip --wait` on boot. */
  bootTimeoutS?: number;
  /** Seconds `tart stop` waits before it SIGKILLs a VM we are done with. */
  stopTimeoutS?: number;
  vmSettings?: { cpu?: number; memoryMb?: number };
  /** How long a VM's `tart run` may take to exit after `tart stop` (default 30 s; tests shorten it). */
  runExitMs?: number;
  /** How long an adopted VM that would not stop is checked for going off (default 10 min; tests shorten it). */
  offCheckForMs?: number;
}

type SlotState = 'empty' | 'warming' | 'warm' | 'busy' | 'draining';

interface Slot {
  index: number;
  state: SlotState;
  vm?: string;
  /** Our own `tart run` child; absent for a VM adopted after a restart. */
  run?: TartRunProcess;
  warming?: Promise<void>;
  /** How this VM is reached, settled once per VM during boot (or adoption). */
  guest?: GuestTransport;
  /**
   * A draining slot whose adopted VM was no longer checked (recoverWhenOff gave up): one more
   * `tart list` when a job waits for a slot, so that a VM stopped since frees it without a restart.
   */
  recheck?: () => void;
}

export interface Lease {
  slot: number;
  vm: string;
  /** Host directory the VM sees as `/Volumes/My Shared Files/hangar`. */
  slotDir: string;
  /** `tart exec` or SSH, whichever this VM answered on. */
  guest: GuestTransport;
}

/**
 * At most two Tart VMs, one per slot. A slot goes empty → warming → warm → busy → draining →
 * empty; a VM is used for one attempt only, and the slot counts as busy until its `tart run` has
 * exited, or a third VM would hit Apple's limit. Refills run in the background after each job.
 */
export class TartPool {
  private readonly slots: Slot[];
  private readonly cli: TartCli;
  private readonly guests: GuestConnector;
  private readonly records: SlotRecords;
  private readonly background = new Set<Promise<void>>();
  private waiters: (() => void)[] = [];
  private disposed = false;

  constructor(private readonly options: TartPoolOptions) {
    if (options.warmSize < 0 || options.warmSize > MAX_MACOS_VMS) {
      throw new HangarError('E_BAD_REQUEST', `tart warm pool size must be 0–${MAX_MACOS_VMS}, got ${options.warmSize}`);
    }
    this.cli = options.cli;
    this.guests = new GuestConnector(options);
    this.records = new SlotRecords(options.slotsDir);
    this.slots = Array.from({ length: MAX_MACOS_VMS }, (_, index) => ({ index, state: 'empty' as SlotState }));
  }

  slotDir(index: number): string {
    return join(this.options.slotsDir, String(index));
  }

  /**
   * After a start or a crash: every `hangar-*` VM is either adopted (it was warm, still runs and
   * answers on the transport it was booted with) or stopped and deleted. Job folders left in the shares go too.
   */
  async reconcile(): Promise<{ adopted: string[]; deleted: string[] }> {
    mkdirSync(this.options.slotsDir, { recursive: true });
    const adopted: string[] = [];
    const deleted: string[] = [];
    for (const vm of await this.cli.list()) {
      if (!vm.Name.startsWith(VM_PREFIX)) continue;
      const slot = this.slots[parseSlot(vm.Name) ?? -1];
      const record = slot ? this.records.read(slot.index) : undefined;
      const guest =
        slot !== undefined &&
        slot.state === 'empty' &&
        record?.vm === vm.Name &&
        record.state === 'warm' &&
        vm.Running &&
        adopted.length < this.options.warmSize
          ? await this.guests.adopted(record).catch(() => undefined)
          : undefined;
      if (slot && guest && (await guest.probe(TRUE, ALIVE_TIMEOUT_MS)).exitCode === 0) {
        slot.state = 'warm';
        slot.vm = vm.Name;
        slot.guest = guest;
        adopted.push(vm.Name);
        this.clearJobDirs(slot.index);
        continue;
      }
      if (vm.Running) await this.cli.stop(vm.Name, this.options.stopTimeoutS ?? 5);
      await this.waitStopped(vm.Name, undefined);
      await this.cli.delete(vm.Name);
      deleted.push(vm.Name);
    }
    for (const slot of this.slots) {
      if (slot.state === 'empty') {
        this.records.write(slot.index, undefined);
        this.clearJobDirs(slot.index);
      }
    }
    this.options.logger?.info({ adopted, deleted }, 'tart VMs reconciled');
    return { adopted, deleted };
  }

  /** Starts warming empty slots up to the configured warm size. */
  fill(): void {
    if (this.disposed) return;
    const ready = this.slots.filter((slot) => slot.state === 'warm' || slot.state === 'warming').length;
    let missing = this.options.warmSize - ready;
    for (const slot of this.slots) {
      if (missing <= 0) break;
      if (slot.state !== 'empty') continue;
      missing--;
      slot.state = 'warming';
      slot.warming = this.track(
        this.boot(slot, () => {}).then(
          () => {
            slot.state = 'warm';
            this.records.write(slot.index, this.recordOf(slot, 'warm'));
          },
          (error: unknown) => {
            this.options.logger?.error({ err: error, slot: slot.index }, 'warming a tart VM failed');
            return this.teardown(slot);
          },
        ),
      );
      slot.warming.finally(() => this.notify());
    }
  }

  /** A VM for one attempt: a warm one when there is one (no clone/boot timings), else a cold boot. */
  async acquire(timing: (phase: TimingPhase, ms: number) => void): Promise<Lease> {
    for (;;) {
      if (this.disposed) throw new HangarError('E_UNAVAILABLE', 'the tart executor is shutting down');
      const warm = this.slots.find((slot) => slot.state === 'warm');
      if (warm) {
        warm.state = 'busy';
        const started = Date.now();
        // A warm VM may have died since (host sleep, someone ran `tart stop`): probe, else boot cold.
        if ((await warm.guest!.probe(TRUE, ALIVE_TIMEOUT_MS)).exitCode === 0) {
          timing('ready', Date.now() - started);
          this.records.write(warm.index, this.recordOf(warm, 'busy'));
          return this.lease(warm);
        }
        await this.teardown(warm);
        continue;
      }
      // A VM already booting will be ready sooner than one we would start now.
      const warming = this.slots.find((slot) => slot.state === 'warming');
      const empty = this.slots.find((slot) => slot.state === 'empty');
      if (empty && !warming) {
        empty.state = 'busy';
        try {
          await this.boot(empty, timing);
        } catch (error) {
          await this.teardown(empty);
          throw toHangarError(error);
        }
        this.records.write(empty.index, this.recordOf(empty, 'busy'));
        return this.lease(empty);
      }
      const waited = new Promise<void>((resolve) => this.waiters.push(resolve));
      for (const slot of this.slots) slot.recheck?.();
      await waited;
    }
  }

  /** Stops and deletes the attempt's VM (reported as `delete`), then refills the pool in the background. */
  async release(lease: Lease, timing: (phase: TimingPhase, ms: number) => void): Promise<void> {
    const slot = this.slots[lease.slot]!;
    const started = Date.now();
    await this.teardown(slot);
    timing('delete', Date.now() - started);
    this.fill();
  }

  /**
   * Stops a leased VM and waits until it is off (its `tart run` exited; `tart stop` returns right after
   * its SIGKILL): from then on no guest process writes to the slot's share.
   */
  async stopVm(lease: Lease): Promise<void> {
    await this.stopAndWait(lease.vm, this.slots[lease.slot]!.run);
  }

  /**
   * `tart stop`, then the wait for the VM's `tart run` to exit, both bounded. A `tart stop` that has
   * not returned STOP_GRACE_MS after its own timeout (a loaded Mac, a hung XPC service) is cut off
   * (E_TIMEOUT) and our `tart run` is killed as Tart itself does after the timeout (Stop.swift): the
   * VM goes with it. Another failure (Tart's own kill refused) is thrown; an adopted VM's `tart run`
   * is not our child, so its stop's failure is thrown too.
   */
  private async stopAndWait(name: string, run: TartRunProcess | undefined): Promise<void> {
    try {
      await this.cli.stop(name, this.options.stopTimeoutS ?? 5);
    } catch (error) {
      if (!run || !(error instanceof HangarError) || error.code !== 'E_TIMEOUT') throw error;
      this.options.logger?.warn({ err: error, vm: name, pid: run.pid }, 'tart stop hung: killing the VM’s tart run');
      run.kill();
    }
    await this.waitStopped(name, run);
  }

  /** Resolves when no VM is booting or being torn down (tests; shutdown). */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  runningVms(): string[] {
    return this.slots.filter((slot) => slot.vm !== undefined).map((slot) => slot.vm!);
  }

  /** Stops and deletes every VM we hold, warm ones too unless `keepWarm` (then the next start adopts them). */
  async dispose(keepWarm = false): Promise<void> {
    this.disposed = true;
    this.notify();
    await this.settled();
    await Promise.all(
      this.slots.map((slot) => {
        if (slot.state === 'empty') return;
        if (keepWarm && slot.state === 'warm') return;
        return this.teardown(slot);
      }),
    );
  }

  private lease(slot: Slot): Lease {
    return { slot: slot.index, vm: slot.vm!, slotDir: this.slotDir(slot.index), guest: slot.guest! };
  }

  private recordOf(slot: Slot, state: 'warm' | 'busy'): SlotRecord {
    const guest = slot.guest;
    return {
      vm: slot.vm!,
      state,
      ...(guest ? { access: guest.kind } : {}),
      ...(guest instanceof SshTransport ? { ip: guest.ip } : {}),
    };
  }

  private async boot(slot: Slot, timing: (phase: TimingPhase, ms: number) => void): Promise<void> {
    const name = `${VM_PREFIX}${slot.index}-${randomUUID()}`;
    const slotDir = this.slotDir(slot.index);
    mkdirSync(slotDir, { recursive: true });
    let phase = Date.now();
    slot.vm = name;
    // Recorded before the clone exists, so a crash mid-boot leaves a name reconcile will delete.
    this.records.write(slot.index, { vm: name, state: 'busy' });
    await this.cli.clone(this.options.image, name);
    await this.cli.set(name, this.options.vmSettings ?? {});
    timing('clone', Date.now() - phase);
    phase = Date.now();
    slot.run = this.cli.run(name, {
      shares: { [SHARE_NAME]: slotDir },
      logFile: join(this.options.slotsDir, `${slot.index}.run.log`),
    });
    const exitedEarly = slot.run.exited.then(() => {
      throw new HangarError('E_UNAVAILABLE', `tart run ${name} exited during boot; see ${slotDir}.run.log`);
    });
    // `tart run` may fail at once (the 2-VM limit, a bad share): wait until `tart list` shows it running.
    await Promise.race([this.waitRunning(name), exitedEarly]);
    const ip = await Promise.race([this.cli.ip(name, this.options.bootTimeoutS ?? 90), exitedEarly]);
    timing('boot', Date.now() - phase);
    phase = Date.now();
    // The guest agent and sshd start around when the network is up: wait for the one we use.
    slot.guest = await Promise.race([this.guests.connect(name, ip), exitedEarly]);
    timing('ready', Date.now() - phase);
  }

  /** Stop, wait for `tart run` to exit (only then is the slot free), delete, clear the share. */
  private async teardown(slot: Slot): Promise<void> {
    const name = slot.vm;
    slot.state = 'draining';
    if (name) {
      try {
        await this.stopAndWait(name, slot.run);
      } catch (error) {
        // The error tells the user how to end the VM: once they have, the slot comes back.
        this.recoverWhenOff(slot, name, slot.run);
        throw error;
      }
      await this.cli.delete(name);
    }
    this.emptied(slot);
  }

  /** The slot's VM is off and deleted: the slot is free. */
  private emptied(slot: Slot): void {
    slot.vm = undefined;
    slot.run = undefined;
    slot.guest = undefined;
    slot.recheck = undefined;
    this.records.write(slot.index, undefined);
    this.clearJobDirs(slot.index);
    slot.state = 'empty';
    this.notify();
  }

  /**
   * A slot left draining by a VM that did not go off (its `tart run` outlived `tart stop` and the
   * wait): once the VM is off after all (the user killed its `tart run`, as the error said), it is
   * deleted and the slot is free again, without an agent restart. Ours is watched through its
   * `tart run`'s exit; an adopted one through `tart list`, every RECHECK_MS for RECHECK_FOR_MS.
   */
  private recoverWhenOff(slot: Slot, name: string, run: TartRunProcess | undefined): void {
    const stillOurs = () => !this.disposed && slot.state === 'draining' && slot.vm === name;
    const recover = async () => {
      if (!stillOurs()) return;
      try {
        await this.cli.delete(name);
      } catch (error) {
        this.options.logger?.error({ err: error, vm: name }, 'deleting a tart VM that went off late failed');
        return;
      }
      if (!stillOurs()) return;
      this.options.logger?.info(
        { vm: name, slot: slot.index },
        'a tart VM that would not stop is off: slot free again',
      );
      this.emptied(slot);
      this.fill();
    };
    if (run) {
      void run.exited.then(recover, recover);
      return;
    }
    const checkForMs = this.options.offCheckForMs ?? OFF_CHECK_FOR_MS;
    const deadline = Date.now() + checkForMs;
    let delay = Math.min(RECHECK_MS, checkForMs / 8);
    /** Whether the VM is off now (a failed `tart list` counts as running). */
    const isOff = async () => {
      const vm = await this.cli.list().then(
        (vms) => vms.find((entry) => entry.Name === name),
        () => ({ Running: true }),
      );
      return !vm?.Running;
    };
    const check = async () => {
      if (!stillOurs()) return;
      if (await isOff()) return recover();
      delay = Math.min(delay * 2, RECHECK_MAX_MS);
      if (Date.now() + delay <= deadline) {
        setTimeout(() => void check(), delay).unref();
        return;
      }
      this.options.logger?.warn(
        { vm: name, slot: slot.index },
        `tart VM ${name} still runs ${Math.round(checkForMs / 1000)} s after its stop failed and is no longer checked ` +
          `on its own: its slot stays out of use; stop it (tart stop ${name}, else kill its tart run): a job that ` +
          'waits for a slot asks again (or restart the agent)',
      );
      // From now on only when a job waits for a slot (acquire), once per wait, never on a timer.
      const onDemand = () => {
        slot.recheck = undefined;
        void (async () => {
          if (!stillOurs()) return;
          if (await isOff()) return recover();
          if (stillOurs()) slot.recheck = onDemand;
        })();
      };
      slot.recheck = onDemand;
    };
    setTimeout(() => void check(), delay).unref();
  }

  private async waitRunning(name: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      if ((await this.cli.list()).find((entry) => entry.Name === name)?.Running) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new HangarError('E_TIMEOUT', `tart run ${name} did not start within 30 s`);
  }

  private async waitStopped(name: string, run: TartRunProcess | undefined): Promise<void> {
    if (run) {
      const exited = run.exited.then(
        () => true,
        () => true,
      );
      let timer: NodeJS.Timeout | undefined;
      const runExitMs = this.options.runExitMs ?? RUN_EXIT_MS;
      const bound = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), runExitMs)));
      const off = await Promise.race([exited, bound]);
      clearTimeout(timer);
      if (off) return;
      throw new HangarError(
        'E_TIMEOUT',
        `tart VM ${name} (tart run, pid ${run.pid}) still runs ${runExitMs / 1000} s after \`tart stop\`; end it with: kill -9 ${run.pid}`,
      );
    }
    // An adopted VM's `tart run` is not our child: watch `tart list` instead, as long.
    const runExitMs = this.options.runExitMs ?? RUN_EXIT_MS;
    const deadline = Date.now() + runExitMs;
    for (;;) {
      const vm = (await this.cli.list()).find((entry) => entry.Name === name);
      if (!vm?.Running) return;
      if (Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, runExitMs / 4)));
    }
    throw new HangarError(
      'E_TIMEOUT',
      `tart VM ${name} still runs ${runExitMs / 1000} s after \`tart stop\`; stop it with: tart stop ${name}`,
    );
  }

  private track(work: Promise<void>): Promise<void> {
    const tracked = work.finally(() => this.background.delete(tracked));
    this.background.add(tracked);
    return tracked;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private clearJobDirs(index: number): void {
    const dir = this.slotDir(index);
    mkdirSync(dir, { recursive: true });
    for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

export function parseSlot(name: string): number | undefined {
  const match = /^hangar-(\d+)-[0-9a-f-]{36}$/.exec(name);
  return match ? Number(match[1]) : undefined;
}
