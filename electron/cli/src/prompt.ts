import { HangarError } from '@hangar/shared';
import { createInterface } from 'node:readline';

/**
 * Asking the user at the terminal: a password without echo, a yes/no. Both refuse when stdin is not
 * a terminal (a script): the script passes what it means instead (--password-stdin, --yes,
 * --code), so nothing waits forever for an answer no one can type.
 */

export async function promptHidden(question: string, flag: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    throw new HangarError(
      'E_BAD_REQUEST',
      `password: there is no terminal to ask it on; give it on stdin with ${flag}`,
    );
  }
  // Echo off before the question shows: what is typed (or pasted) at once must not be echoed.
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          done();
          resolve(value);
          return;
        }
        if (char === '\u0003' || char === '\u0004') {
          done();
          reject(new HangarError('E_BAD_REQUEST', 'cancelled; nothing was changed'));
          return;
        }
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else if (char === '\u0015') value = '';
        else if (char >= ' ') value += char;
      }
    };
    stdin.on('data', onData);
  });
}

/** All of stdin, without the one trailing newline `echo` and here-strings add. */
export async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk as string;
  return text.replace(/\r?\n$/, '');
}

export async function confirm(question: string, instead: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new HangarError('E_BAD_REQUEST', `there is no terminal to ask "${question}" on; ${instead}`);
  }
  const lines = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => lines.question(`${question} [y/N] `, resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    lines.close();
  }
}

/** A line typed at the terminal (echoed: a code read off another screen, not a secret kept here). */
export async function ask(question: string, instead: string): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new HangarError('E_BAD_REQUEST', `there is no terminal to ask "${question}" on; ${instead}`);
  }
  const lines = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await new Promise<string>((resolve) => lines.question(`${question} `, resolve));
  } finally {
    lines.close();
  }
}
