import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  ControlClient,
  ControlServer,
  HOST_EVENTS,
  HOST_PROCEDURES,
  HangarError,
  Mux,
  SCHEMA_VERSION,
  createMemoryTransportPair,
  type ProcedureHandlers,
} from '@hangar/shared';

/** A small table of our own: the client and server are generic, the real tables are tested end to end. */
const PROCEDURES = {
  'echo.say': {
    params: z.object({ text: z.string().max(10), loud: z.boolean().default(false) }),
    result: z.object({ said: z.string() }),
  },
  'echo.wait': { params: z.object({}), result: z.object({}) },
  'echo.lie': { params: z.object({}), result: z.object({ count: z.number().int() }) },
} as const;
const EVENTS = {
  'echo.heard': z.object({ text: z.string(), times: z.number().int().default(1) }),
} as const;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  vi.useRealTimers();
});

function connect(options: { timeoutMs?: number } = {}) {
  const pair = createMemoryTransportPair();
  const clientMux = new Mux(pair[0], { role: 'client' });
  const serverMux = new Mux(pair[1], { role: 'agent' });
  const received: unknown[] = [];
  const waiting: (() => void)[] = [];
  const handlers: ProcedureHandlers<typeof PROCEDURES, null> = {
    'echo.say': async (params) => {
      received.push(params);
      return { result: { said: params.loud ? params.text.toUpperCase() : params.text } };
    },
    // Answers only when the test says so.
    'echo.wait': () => new Promise((resolve) => waiting.push(() => resolve({ result: {} }))),
    // A peer that breaks the contract: not an integer.
    'echo.lie': async () => ({ result: { count: 1.5 } }) as never,
  };
  const internal: { error: HangarError; name: string }[] = [];
  const server = new ControlServer(serverMux, PROCEDURES, EVENTS, handlers, null, {
    onInternalError: (error, name) => internal.push({ error, name }),
  });
  // The real server refuses to answer with an invalid result; a broken peer is a raw one.
  const invalid: { error: HangarError; event: string }[] = [];
  const client = new ControlClient(clientMux, PROCEDURES, EVENTS, {
    peer: 'the echo host',
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    onInvalidEvent: (error, event) => invalid.push({ error, event }),
  });
  cleanups.push(() => {
    client.dispose();
    server.dispose();
    clientMux.dispose();
    serverMux.dispose();
    pair.cut();
  });
  /** What a peer that is not a ControlServer would send. */
  const sendRaw = (message: object) => serverMux.sendControl(JSON.stringify(message));
  return { pair, client, server, clientMux, serverMux, received, waiting, internal, invalid, sendRaw };
}

function closed(mux: Mux) {
  return new Promise<{ code: string; message: string }>((resolve) => mux.onClose(resolve));
}

describe('ControlClient', () => {
  it('a call gets the answer, parsed by the table (defaults applied on the way out)', async () => {
    const { client, received } = connect();
    expect(await client.call('echo.say', { text: 'hi', loud: true })).toEqual({ said: 'HI' });
    expect(await client.call('echo.say', { text: 'hi' })).toEqual({ said: 'hi' });
    expect(received).toEqual([
      { text: 'hi', loud: true },
      { text: 'hi', loud: false },
    ]);
  });

  it('a bad call is refused here, naming the field, and never reaches the peer', async () => {
    const { client, received } = connect();
    const error = await client.call('echo.say', { text: 'far too long to say' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HangarError);
    expect(error).toMatchObject({ code: 'E_BAD_REQUEST', message: expect.stringMatching(/^echo\.say: text: /) });
    await expect(client.call('echo.nothing' as 'echo.say', { text: 'x' })).rejects.toMatchObject({
      code: 'E_BAD_REQUEST',
      message: 'unknown method "echo.nothing"',
    });
    // The link still works, and the server saw only the good call.
    await client.call('echo.say', { text: 'ok' });
    expect(received).toEqual([{ text: 'ok', loud: false }]);
  });

  it('an answer that breaks the table is a protocol error naming the field, not the caller’s bad input', async () => {
    const { client, sendRaw, serverMux } = connect();
    // Stand in for a broken peer: answer request 1 with a result of the wrong shape.
    serverMux.onControl((json) => {
      const request = JSON.parse(json) as { id: number };
      sendRaw({ schema_version: SCHEMA_VERSION, kind: 'response', id: request.id, ok: true, result: { said: 42 } });
    });
    await expect(client.call('echo.say', { text: 'hi' })).rejects.toMatchObject({
      code: 'E_PROTOCOL',
      message: expect.stringMatching(/the echo host answered echo\.say with an invalid result \(said: /),
    });
  });

  it('an error answer is the HangarError the handler threw, code and message', async () => {
    const { client } = connect();
    // The real server refuses its own invalid result as E_INTERNAL; the client passes that on.
    await expect(client.call('echo.lie', {})).rejects.toMatchObject({
      code: 'E_INTERNAL',
      message: expect.stringContaining('echo.lie produced an invalid result'),
    });
  });

  it('a call the peer does not answer in time fails with E_TIMEOUT; a late answer is ignored', async () => {
    vi.useFakeTimers();
    const { client, waiting } = connect({ timeoutMs: 5000 });
    const call = client.call('echo.wait', {});
    const failed = call.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await failed).toMatchObject({
      code: 'E_TIMEOUT',
      message: 'the echo host did not answer echo.wait within 5 s',
    });
    expect(client.pendingCount).toBe(0);
    waiting.shift()!();
    await vi.advanceTimersByTimeAsync(10);
    // A call with its own timeout of 0 waits as long as the link lives.
    const patient = client.call('echo.wait', {}, { timeoutMs: 0 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.pendingCount).toBe(1);
    waiting.shift()!();
    await vi.advanceTimersByTimeAsync(10);
    await expect(patient).resolves.toEqual({});
  });

  it('the link dropping rejects every pending call with E_UNAVAILABLE naming the peer and the call', async () => {
    const { client, pair } = connect();
    const first = client.call('echo.wait', {}).catch((e: unknown) => e);
    const second = client.call('echo.wait', {}).catch((e: unknown) => e);
    await vi.waitFor(() => expect(client.pendingCount).toBe(2));
    pair.cut({ code: 'E_UNAVAILABLE', message: 'cable pulled' });
    for (const error of [await first, await second]) {
      expect(error).toMatchObject({
        code: 'E_UNAVAILABLE',
        message: 'lost the link to the echo host during echo.wait: cable pulled',
      });
    }
    // And a call after it fails at once, without waiting for anything.
    await expect(client.call('echo.say', { text: 'hi' })).rejects.toMatchObject({
      code: 'E_UNAVAILABLE',
      message: expect.stringContaining('cable pulled'),
    });
  });

  it('events reach listeners validated, with defaults; invalid or unknown ones are dropped and reported', async () => {
    const { client, server, sendRaw, invalid } = connect();
    const heard: unknown[] = [];
    client.on('echo.heard', (data) => heard.push(data));
    sendRaw({ schema_version: SCHEMA_VERSION, kind: 'event', event: 'echo.heard', data: { text: 7 } });
    sendRaw({ schema_version: SCHEMA_VERSION, kind: 'event', event: 'echo.unknown', data: {} });
    server.publish('echo.heard', { text: 'once' });
    await vi.waitFor(() => expect(heard).toHaveLength(1));
    expect(heard).toEqual([{ text: 'once', times: 1 }]);
    expect(invalid.map((i) => [i.event, i.error.code])).toEqual([
      ['echo.heard', 'E_PROTOCOL'],
      ['echo.unknown', 'E_PROTOCOL'],
    ]);
    expect(invalid[0]!.error.message).toMatch(/invalid echo\.heard event \(text: /);
  });

  it('a message that is not a control message closes the link with E_PROTOCOL', async () => {
    const { clientMux, serverMux, sendRaw } = connect();
    const reason = closed(serverMux);
    sendRaw({ schema_version: SCHEMA_VERSION, kind: 'gossip' });
    expect(await reason).toMatchObject({ code: 'E_PROTOCOL' });
    expect(clientMux.closed).toBe(true);
  });
});

describe('ControlServer.publish', () => {
  it('an event its table refuses never leaves, and is reported as a bug here', async () => {
    const { client, server, internal } = connect();
    const heard: unknown[] = [];
    client.on('echo.heard', (data) => heard.push(data));
    server.publish('echo.heard', { text: 3 } as never);
    server.publish('echo.heard', { text: 'after' });
    await vi.waitFor(() => expect(heard).toHaveLength(1));
    expect(heard).toEqual([{ text: 'after', times: 1 }]);
    expect(internal).toEqual([
      {
        name: 'echo.heard',
        error: expect.objectContaining({
          code: 'E_INTERNAL',
          message: expect.stringMatching(/^event echo\.heard not sent: text: /),
        }),
      },
    ]);
  });
});

describe('host events (HOST_EVENTS)', () => {
  it('a job.updated that breaks its schema is dropped and reported; a valid one reaches each listener once', async () => {
    const pair = createMemoryTransportPair();
    const clientMux = new Mux(pair[0], { role: 'client' });
    const agentMux = new Mux(pair[1], { role: 'agent' });
    const invalid: string[] = [];
    const client = new ControlClient(clientMux, HOST_PROCEDURES, HOST_EVENTS, {
      peer: 'host "mini"',
      onInvalidEvent: (error) => invalid.push(error.message),
    });
    cleanups.push(() => {
      client.dispose();
      clientMux.dispose();
      agentMux.dispose();
    });
    const updates: string[] = [];
    client.on('job.updated', ({ job }) => updates.push(`${job.id} ${job.state}`));
    const send = (data: unknown) =>
      agentMux.sendControl(
        JSON.stringify({ schema_version: SCHEMA_VERSION, kind: 'event', event: 'job.updated', data }),
      );
    const job = {
      id: 'j-0123456789',
      state: 'running',
      command: 'make',
      executor: 'shell',
      created_at: 1,
      finished_at: null,
      exit_code: null,
      attempt: 1,
      retries: 0,
      error: null,
    };
    send({ job: { ...job, state: 'exploded' } });
    send({ job });
    await vi.waitFor(() => expect(updates).toEqual(['j-0123456789 running']));
    expect(invalid).toEqual([expect.stringMatching(/^host "mini" sent an invalid job\.updated event \(job\.state: /)]);
  });
});
