import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** What `<slots>/<n>.json` holds: enough for a restarted agent to adopt a warm VM. */
export const SlotRecord = z.object({
  vm: z.string().min(1),
  state: z.enum(['warm', 'busy']),
  access: z.enum(['exec', 'ssh']).optional(),
  ip: z.string().min(1).optional(),
});
export type SlotRecord = z.infer<typeof SlotRecord>;

/**
 * The record of each slot, kept beside the shares, not inside them (the guest can write to its
 * share). A record that is missing, damaged or not of this shape reads as none: its VM is then
 * not adopted but deleted, which is always safe.
 */
export class SlotRecords {
  constructor(private readonly slotsDir: string) {}

  read(index: number): SlotRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(index), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const parsed = SlotRecord.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined; // not JSON: a write cut short by a crash
    }
  }

  write(index: number, record: SlotRecord | undefined): void {
    mkdirSync(this.slotsDir, { recursive: true });
    if (record) writeFileSync(this.path(index), JSON.stringify(record));
    else rmSync(this.path(index), { force: true });
  }

  private path(index: number): string {
    return join(this.slotsDir, `${index}.json`);
  }
}
