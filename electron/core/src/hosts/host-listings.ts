import type { Disposable, EventData, HOST_EVENTS, HostEvent } from '@hangar/shared';
import type { HostConnection } from '../connection/host-connection.js';

/**
 * What makes one kind of listing (sessions, jobs) a cache: the host event that keeps it current
 * and how that event, an answer and a listing's query meet what is known.
 */
export interface ListingRule<Known, Query, Answer, K extends HostEvent> {
  /** The host event that tells of a change to the listing. */
  event: K;
  /** At most one background ask per host in this long (see HostListings.list). */
  refreshGapMs: number;
  /** The answer to `query` out of what is known, or undefined when what is known cannot answer it. */
  read(known: Known, query: Query): Answer | undefined;
  /** What the host's answer to `query` makes known. */
  keep(answer: Answer, query: Query): Known;
  /** What the background refresh asks, behind an answer to `query` from what is known. */
  refresh(known: Known, query: Query): Query;
  /** What an event makes of what is known (undefined: nothing is, or the event cannot be placed). */
  merge(known: Known | undefined, event: EventData<typeof HOST_EVENTS, K>): Known | undefined;
}

/**
 * Each linked host's listing as its events keep it current (issue 18: ten hosts asked for every
 * `hangar session ls` or `hangar jobs` took most of a second). A listing is answered from what is
 * known while the host's link stays up; a link that leaves `online` forgets the host, which is
 * then asked (and reported unreachable) as before. What no event tells is caught by asking the
 * host again in the background behind each answer from here, at most once per refresh gap: the
 * next listing has what it said. An answer that an event overtook is not kept.
 */
export class HostListings<Known, Query, Answer, K extends HostEvent> {
  private readonly known = new Map<string, Known>();
  /** Bumped on every event or change: an answer asked for before the bump is older than it. */
  private readonly generations = new Map<string, number>();
  /** When each host was last asked in the background, and whether that is still under way. */
  private readonly refreshed = new Map<string, { at: number; pending: boolean }>();

  constructor(
    private readonly rule: ListingRule<Known, Query, Answer, K>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Follows the host's events and its link for as long as the connection lives. */
  follow(name: string, connection: Pick<HostConnection, 'on' | 'onStatus'>): Disposable[] {
    return [
      connection.on(this.rule.event, (data) => {
        this.bump(name);
        const known = this.rule.merge(this.known.get(name), data);
        if (known === undefined) this.known.delete(name);
        else this.known.set(name, known);
      }),
      connection.onStatus((status) => {
        if (status !== 'online') this.forget(name);
      }),
    ];
  }

  /** The answer to `query` if this core holds it for a link that is still up. */
  current(name: string, query: Query): Answer | undefined {
    const known = this.known.get(name);
    return known === undefined ? undefined : this.rule.read(known, query);
  }

  /** The known answer (and `ask` again in the background), else `ask`'s answer, kept. */
  async list(name: string, ask: (query: Query) => Promise<Answer>, query: Query): Promise<Answer> {
    const known = this.known.get(name);
    const current = known === undefined ? undefined : this.rule.read(known, query);
    if (known === undefined || current === undefined) return this.ask(name, ask, query);
    const refresh = this.refreshed.get(name);
    if (!refresh?.pending && this.now() - (refresh?.at ?? 0) >= this.rule.refreshGapMs) {
      const state = { at: this.now(), pending: true };
      this.refreshed.set(name, state);
      // A host that no longer answers is asked, and reported, by the next listing.
      this.ask(name, ask, this.rule.refresh(known, query)).then(
        () => (state.pending = false),
        () => {
          state.pending = false;
          this.forget(name);
        },
      );
    }
    return current;
  }

  /** The host's listing changed through this core (or may have): the next listing asks it. */
  forget(name: string): void {
    this.bump(name);
    this.known.delete(name);
  }

  private async ask(name: string, ask: (query: Query) => Promise<Answer>, query: Query): Promise<Answer> {
    const generation = this.generations.get(name) ?? 0;
    const answer = await ask(query);
    if ((this.generations.get(name) ?? 0) === generation) this.known.set(name, this.rule.keep(answer, query));
    return answer;
  }

  private bump(name: string): void {
    this.generations.set(name, (this.generations.get(name) ?? 0) + 1);
  }
}
