#!/usr/bin/env node
// One side of natlab.mjs's data-channel opens, run inside a namespace of the NAT lab: `offer` (the
// device, behind natB) or `answer` (the agent, behind natA). JSON lines in on stdin, out on stdout;
// the parent carries the signals between the two, as the relay's signaling route does.
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import nodeDataChannel from 'node-datachannel';
import { answerWebRtc, iceServersFrom, offerWebRtc } from '@hangar/shared';

const [role, stun, turn, username, credential] = process.argv.slice(2);
const config = { iceServers: iceServersFrom([stun, turn], { username, credential }) };
const say = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
let answering;
let offering;
let began = 0;

for await (const line of createInterface({ input: process.stdin })) {
  const message = JSON.parse(line);
  try {
    if (message.go && role === 'offer') {
      began = performance.now();
      offering = await offerWebRtc(nodeDataChannel, config);
      say({ offer: offering.offer });
    } else if (message.offer && role === 'answer') {
      answering = await answerWebRtc(nodeDataChannel, config, message.offer);
      say({ answer: answering.answer });
      // The device's side reports the open (or its failure); this side's link closes with the device's close.
      answering.link.catch(() => undefined);
    } else if (message.answer && role === 'offer') {
      const link = await offering.connect(message.answer);
      const ms = performance.now() - began;
      say({ open: ms, path: link.path().kind });
      link.transport.close();
    } else if (message.quit) {
      break;
    }
  } catch (error) {
    say({ error: String(error?.message ?? error), retry: error?.details?.retry === true });
  }
}
// Every connection closed: let the library's threads finish, then stop them.
await new Promise((resolve) => setTimeout(resolve, 300));
nodeDataChannel.cleanup();
