import type { DataChannelLike } from '../../src/index.js';

/** A data channel that records what is sent (binary in `sent`, text in `texts`) and lets the test hand messages in. */
export function fakeChannel() {
  const sent: Uint8Array[] = [];
  const texts: string[] = [];
  let onMessage: ((message: string | Uint8Array | ArrayBuffer) => void) | undefined;
  const channel: DataChannelLike = {
    sendMessageBinary: (message) => {
      sent.push(message.slice());
      return true;
    },
    sendMessage: (text) => {
      texts.push(text);
      return true;
    },
    bufferedAmount: () => 0,
    setBufferedAmountLowThreshold: () => undefined,
    onBufferedAmountLow: () => undefined,
    onMessage: (listener) => (onMessage = listener),
    onClosed: () => undefined,
    onError: () => undefined,
    isOpen: () => true,
    close: () => undefined,
  };
  return { channel, sent, texts, receive: (message: Uint8Array | string) => onMessage!(message) };
}
