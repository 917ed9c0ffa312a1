// Writes README.md's option tables and its copy of --help, between `<!-- options-doc: NAME -->` and
// `<!-- /options-doc -->`: flags, variables and defaults from the option table (src/option-table.ts),
// each option's meaning from its JSDoc in HandlerOptions, ServerOptions or MemoryIdempotencyOptions.
// Run after changing an option:
//   npx tsx scripts/options-doc.ts
// test/option-table.test.ts fails while README.md differs from what this writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { usage } from '../src/config.ts';
import { type OptionRow, ROWS } from '../src/option-table.ts';

const ROOT = join(import.meta.dirname, '..');
export const README = join(ROOT, 'README.md');

export interface OptionDoc {
  /** The interface that declares it: HandlerOptions, ServerOptions, or the fields of one of their options. */
  readonly scope: 'handler' | 'server';
  readonly text: string;
  /** Its JSDoc `@default`. */
  readonly default: string | undefined;
}

/** Where the options are declared, and the name prefix of each interface's members. */
const INTERFACES = [
  { file: 'src/options.ts', name: 'HandlerOptions', scope: 'handler', prefix: '' },
  { file: 'src/server.ts', name: 'ServerOptions', scope: 'server', prefix: '' },
  { file: 'src/idempotency.ts', name: 'MemoryIdempotencyOptions', scope: 'handler', prefix: 'idempotency.' },
] as const;

/** Every documented option by its table name (`idempotency.ttlMs` for a field of `idempotency`). */
export function optionDocs(): Map<string, OptionDoc> {
  const docs = new Map<string, OptionDoc>();
  for (const { file, name, scope, prefix } of INTERFACES) {
    const source = ts.createSourceFile(
      file,
      readFileSync(join(ROOT, file), 'utf8'),
      ts.ScriptTarget.Latest,
      true,
    );
    const declaration = source.statements.find(
      (node): node is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(node) && node.name.text === name,
    );
    if (declaration === undefined) throw new Error(`${file} no longer declares ${name}`);
    for (const member of declaration.members) {
      if (member.name === undefined || !ts.isIdentifier(member.name)) continue;
      const text = ts
        .getJSDocCommentsAndTags(member)
        .filter(ts.isJSDoc)
        .map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? '')
        .join(' ');
      const tag = ts.getJSDocTags(member).find((t) => t.tagName.text === 'default');
      const given = tag === undefined ? undefined : ts.getTextOfJSDocComment(tag.comment);
      docs.set(`${prefix}${member.name.text}`, {
        scope,
        text: oneLine(text),
        default: given && oneLine(given),
      });
    }
  }
  return docs;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
const code = (text: string) => `\`${text}\``;

/** A default as README shows it: strings as code, durations and sizes with their unit. */
function shownDefault(name: string, row: OptionRow, doc: OptionDoc | undefined): string {
  const value = row.default;
  if (value === undefined) {
    // An object option whose fields have rows of their own (idempotency.ttlMs): their defaults.
    const fields = ROWS.filter(([field, f]) => field.startsWith(`${name}.`) && f.default !== undefined);
    if (fields.length > 0) {
      return code(
        `{ ${fields.map(([field, f]) => `${field.slice(name.length + 1)}: ${f.default}`).join(', ')} }`,
      );
    }
    const given = doc?.default ?? '';
    return /^[({]/.test(given) ? code(given) : given;
  }
  if (typeof value === 'string') return code(value);
  if (typeof value !== 'number') return String(value);
  if (name.endsWith('Ms')) {
    return `${value} (${value % 3_600_000 === 0 ? `${value / 3_600_000} h` : `${value / 1000} s`})`;
  }
  if (name.endsWith('Bytes') && value % 1024 === 0) return `${value} (${value / 1024} KiB)`;
  return String(value);
}

/** The options of one scope as a Markdown table. */
function table(scope: 'handler' | 'server', docs: Map<string, OptionDoc>): string {
  const lines = [
    '| option | flag | environment variable | default | meaning |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const [name, row] of ROWS) {
    if (row.scope !== scope) continue;
    const doc = docs.get(name);
    const cells = [
      code(name),
      row.flag === undefined ? '' : code(row.flag),
      row.env === undefined ? '' : code(row.env),
      shownDefault(name, row, doc),
      doc?.text ?? '',
    ];
    lines.push(`| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** What each marked region of README.md holds. */
export function regions(): Record<string, string> {
  const docs = optionDocs();
  return {
    'handler-options': table('handler', docs),
    'server-options': table('server', docs),
    usage: `\`\`\`\n${usage()}\`\`\``,
  };
}

/** README.md's text with every marked region rewritten; throws when a marker is missing. */
export function rewrite(readme: string): string {
  let text = readme;
  for (const [name, body] of Object.entries(regions())) {
    const open = `<!-- options-doc: ${name} -->\n`;
    const start = text.indexOf(open);
    const end = text.indexOf('<!-- /options-doc -->', start);
    if (start === -1 || end === -1) throw new Error(`README.md lacks the region ${name}`);
    text = `${text.slice(0, start + open.length)}${body}\n${text.slice(end)}`;
  }
  return text;
}

if (import.meta.filename === process.argv[1]) {
  const before = readFileSync(README, 'utf8');
  const after = rewrite(before);
  writeFileSync(README, after);
  console.log(before === after ? 'README.md: up to date' : 'README.md: option tables rewritten');
}
