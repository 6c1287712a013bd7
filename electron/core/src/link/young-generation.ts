import { setFlagsFromString } from 'node:v8';

/**
 * Keeps the young generation of a process that runs the core at V8's starting size (1 MiB per
 * semi-space), as AGENT_NODE_FLAGS keeps the agent's small. Importing this module does it
 * (`@hangar/desktop/core/young-generation`). A young generation that has grown stays grown, and
 * loading the core's modules alone grows it to 16 MiB (they are all parsed before any of them
 * runs), so a process imports this before it imports the core: bench:jobs does. The core's entry
 * imports it too, for the processes that load the core statically (the CLI's `hangar up` and
 * `hangar ui`, the Electron shell): there V8's memory reducer shrinks the young generation back
 * to 1 MiB after some quiet seconds (~15 s here) and the flag holds it there from then on; a
 * transfer in the first seconds still meets the grown one. In `hangar`'s bin, requiring node:v8
 * first would cost every command ~3 ms.
 *
 * Why (issue 16): a process receiving a link's bulk bytes gets a fresh 16 KiB buffer from Node
 * for every TLS read, which V8 counts as external memory while little of it sits in the
 * JavaScript heap. With the young generation grown (8-16 MiB per semi-space once the core's
 * modules are loaded), scavenges come too seldom to free those buffers before the external memory
 * passes V8's soft limit, and that starts a mark-compact of the whole heap instead. bench:jobs,
 * 100 MB of random bytes, old and new builds alternately: grown, 2.7-3.7 mark-compacts per 100 MB
 * of a followed log and 3.3-5.7 per 100 MB of artifact in 6 of 7 runs; kept small, none in 4 of 5
 * runs, and the core's CPU per MB (medians of three pairs) 5.4 -> 3.3 ms (log), 6.2 -> 4.9 ms
 * (artifact). `--max-semi-space-size` is read only when V8 starts; the growth factor is read
 * each time the young generation would grow, so setting it at run time holds it where it is.
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

keepYoungGenerationSmall();
