import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The documents a reader of a clone follows links in: README, ARCHITECTURE, docs/ and each PROTOCOL.md. */
function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.md'))
    .map((file) => join('docs', file));
  return ['README.md', 'ARCHITECTURE.md', 'relay/PROTOCOL.md', ...docs].filter((file) => existsSync(join(ROOT, file)));
}

/** Relative targets of Markdown links `[text](target)` (not URLs, not anchors within the page). */
function relativeLinks(text: string): string[] {
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!.split('#')[0]!)
    .filter((target) => target !== '' && !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe('documentation links', () => {
  it('every relative link in the repository docs leads to a file of the repository (none dead in a clone)', () => {
    const dead: string[] = [];
    for (const document of documents()) {
      for (const target of relativeLinks(readFileSync(join(ROOT, document), 'utf8'))) {
        const path = resolve(ROOT, dirname(document), target);
        const inside = !relative(ROOT, path).startsWith('..');
        if (!inside || !existsSync(path)) dead.push(`${document}: ${target}`);
      }
    }
    expect(dead).toEqual([]);
  });
});
