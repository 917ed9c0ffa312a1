import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

// README's TypeScript and JavaScript examples are what a partner copies first: each must still
// typecheck against the package's own types, as a file of theirs importing `segment-endpoint` sees them
// (the built declarations of dist/, Node's types and no DOM), under the project's strict settings. Names an example leaves to its reader (`handlers`,
// `queue`, `cert`) are declared `any` for it, found by a first compile that reports them unknown; any
// other error (an option renamed, an export gone, a wrong type) fails with the README line it is on.

const ROOT = join(import.meta.dirname, '..');
const README = join(ROOT, 'README.md');
const FENCE = /^```(\w*)\s*$/;
/** "Cannot find name", its "Did you mean" spelling, and a shorthand property of nothing: a name left to the reader. */
const UNKNOWN_NAME = new Set([2304, 2552, 18004]);

export interface Example {
  /** The README line of the example's first line of code (after its fence). */
  line: number;
  code: string;
}

/** The fenced blocks of `markdown` whose language is ts or js. */
export function examplesIn(markdown: string): Example[] {
  const examples: Example[] = [];
  let open: { lang: string; line: number; lines: string[] } | undefined;
  markdown.split('\n').forEach((text, index) => {
    const fence = FENCE.exec(text);
    if (fence === null) open?.lines.push(text);
    else if (open === undefined) open = { lang: fence[1] as string, line: index + 2, lines: [] };
    else {
      if (['ts', 'js'].includes(open.lang)) examples.push({ line: open.line, code: open.lines.join('\n') });
      open = undefined;
    }
  });
  return examples;
}

function compilerOptions(): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) =>
        assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    },
  );
  assert.ok(parsed !== undefined);
  return {
    ...parsed.options,
    // A partner's project: the package's published declarations, not its sources; no browser globals.
    customConditions: [],
    lib: ['lib.es2022.d.ts', 'lib.es2024.string.d.ts'],
    noEmit: true,
    // A name left to the reader is `any`, and so are the parameters of the callbacks it is given.
    noImplicitAny: false,
  };
}

/** Each example as a module of its own, beside package.json so that `segment-endpoint` resolves to this package. */
function fileOf(example: Example): string {
  return join(ROOT, `readme-example-${example.line}.ts`);
}

function compile(sources: Map<string, string>, options: ts.CompilerOptions): readonly ts.Diagnostic[] {
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (name) => sources.has(name) || fileExists(name);
  host.readFile = (name) => sources.get(name) ?? readFile(name);
  host.getSourceFile = (name, language, ...rest) => {
    const text = sources.get(name);
    return text === undefined
      ? getSourceFile(name, language, ...rest)
      : ts.createSourceFile(name, text, language, true, ts.ScriptKind.TS);
  };
  const program = ts.createProgram([...sources.keys()], options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file !== undefined && sources.has(d.file.fileName));
}

/** The example, a module even without an import, with a declaration after it for each name it leaves unknown. */
function sourceOf(example: Example, unknown: ReadonlySet<string>): string {
  const declared = [...unknown].map((name) => `declare const ${name}: any; type ${name} = any;`);
  return [example.code, 'export {};', ...declared].join('\n');
}

function unknownNames(diagnostics: readonly ts.Diagnostic[], file: string): Set<string> {
  const names = new Set<string>();
  for (const d of diagnostics) {
    if (d.file?.fileName !== file || !UNKNOWN_NAME.has(d.code) || d.start === undefined) continue;
    names.add(d.file.text.slice(d.start, d.start + (d.length ?? 0)));
  }
  return names;
}

/**
 * The errors left once every name the examples leave unknown is declared. A call whose first argument
 * fails may leave the others unchecked, so a name can come to light only once another is declared: the
 * compile is repeated until no new one does.
 */
function typecheck(examples: Map<string, Example>, options: ts.CompilerOptions): readonly ts.Diagnostic[] {
  const unknown = new Map([...examples.keys()].map((file) => [file, new Set<string>()]));
  for (;;) {
    const sources = new Map(
      [...examples].map(([file, ex]) => [file, sourceOf(ex, unknown.get(file) as Set<string>)]),
    );
    const diagnostics = compile(sources, options);
    let found = false;
    for (const [file, names] of unknown) {
      for (const name of unknownNames(diagnostics, file)) {
        found ||= !names.has(name);
        names.add(name);
      }
    }
    if (!found) return diagnostics;
  }
}

function describeDiagnostic(d: ts.Diagnostic, examples: Map<string, Example>): string {
  const example = examples.get(d.file?.fileName ?? '') as Example;
  const { line } = ts.getLineAndCharacterOfPosition(d.file as ts.SourceFile, d.start ?? 0);
  const where =
    line < example.code.split('\n').length ? `README.md:${example.line + line}` : `README.md:${example.line}`;
  return `${where}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
}

test("README's TypeScript and JavaScript examples typecheck against the package", () => {
  const examples = examplesIn(readFileSync(README, 'utf8'));
  assert.ok(examples.length >= 8, `only ${examples.length} examples found: has README's fencing changed?`);
  const byFile = new Map(examples.map((example) => [fileOf(example), example]));
  const options = compilerOptions();

  const errors = typecheck(byFile, options).map((d) => describeDiagnostic(d, byFile));
  assert.deepEqual(errors, []);
});

test('an example that misuses the package is caught, on its README line', () => {
  const example: Example = {
    line: 100,
    code: [
      "import { createHandler } from 'segment-endpoint';",
      '',
      "createHandler({ apiKeys: ['k'], handlers, maxBodyByte: 10 });",
    ].join('\n'),
  };
  const byFile = new Map([[fileOf(example), example]]);
  const errors = typecheck(byFile, compilerOptions()).map((d) => describeDiagnostic(d, byFile));
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0] as string, /^README\.md:102: TS2561 .*'maxBodyByte'/);
});

test('examples are the ts and js fences only, each with its first line of code', () => {
  const markdown = [
    'text',
    '```ts',
    'const a = 1;',
    '```',
    '```sh',
    'ls',
    '```',
    '```js',
    'b();',
    'c();',
    '```',
  ].join('\n');
  assert.deepEqual(examplesIn(markdown), [
    { line: 3, code: 'const a = 1;' },
    { line: 9, code: 'b();\nc();' },
  ]);
});
