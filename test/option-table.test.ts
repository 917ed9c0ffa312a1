import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { optionDocs, README, rewrite } from '../scripts/options-doc.ts';
import { type CliConfig, parseConfig, usage } from '../src/config.ts';
import { type OptionRow, ROWS } from '../src/option-table.ts';

// One table of options (src/option-table.ts) feeds the CLI, the library's checks and README; the
// interfaces HandlerOptions and ServerOptions declare the same options by hand, for the types and
// their JSDoc. These tests hold the four together.

const LIBRARY_ROWS = ROWS.filter(([, row]) => row.scope !== 'cli');

describe('the option table and the interfaces', () => {
  const docs = optionDocs();

  test('every option of HandlerOptions and ServerOptions has a row of the same scope', () => {
    for (const [name, doc] of docs) {
      const row = ROWS.find(([rowName]) => rowName === name)?.[1];
      assert.ok(row !== undefined, `${name} is declared but has no row in src/option-table.ts`);
      assert.equal(row.scope, doc.scope, name);
    }
  });

  test('every row of the library is declared, with a JSDoc that says what it does', () => {
    for (const [name] of LIBRARY_ROWS) {
      assert.ok(docs.has(name), `${name} has a row but is not declared in HandlerOptions or ServerOptions`);
      assert.notEqual(docs.get(name)?.text, '', `${name} has no JSDoc`);
    }
  });

  test('a JSDoc @default says the default of the row', () => {
    for (const [name, row] of LIBRARY_ROWS) {
      if (row.default === undefined) continue;
      const literal = typeof row.default === 'string' ? `'${row.default}'` : String(row.default);
      const given = docs.get(name)?.default ?? '';
      assert.ok(given.split(' ')[0] === literal, `${name}: @default ${given}, but the table says ${literal}`);
      // An object option's @default (idempotency's) names the default of each of its fields.
      const [outer, field] = name.split('.');
      if (field !== undefined) {
        const parent = docs.get(outer as string)?.default ?? '';
        assert.ok(
          parent.includes(`${field}: ${literal}`),
          `${outer}: @default ${parent} lacks ${field}: ${literal}`,
        );
      }
    }
  });
});

describe('README', () => {
  test('its option tables and its copy of --help are what scripts/options-doc.ts writes', () => {
    const readme = readFileSync(README, 'utf8');
    assert.ok(
      rewrite(readme) === readme,
      'README.md is out of date: run `npx tsx scripts/options-doc.ts` and commit the result',
    );
    assert.ok(readme.includes(`\`\`\`\n${usage()}\`\`\``), 'the usage text under The CLI');
  });
});

describe('the CLI reads every flag of the table', () => {
  const flagged = ROWS.filter(([, row]) => row.flag !== undefined);

  test('--help names each flag and its environment variable', () => {
    for (const [name, row] of flagged) {
      assert.ok(usage().includes(`${row.flag}`), `${name}: ${row.flag}`);
      if (row.env !== undefined) assert.ok(usage().includes(row.env), `${name}: ${row.env}`);
    }
  });

  /** An option of createServer given by flag or variable, and the value createServer is handed. */
  const cases = flagged.flatMap(([name, row]): Array<[string, OptionRow, string | true, unknown]> => {
    if (row.scope === 'cli' || row.cli === 'list' || row.cli === 'module') return [];
    if (row.cli === 'switch') return [[name, row, true, true]];
    if (row.cli === 'integer') return [[name, row, String(row.default), row.default]];
    if (row.cli === 'seconds') return [[name, row, String(Number(row.default) / 1000), row.default]];
    return [[name, row, '/given', '/given']];
  });

  const optionOf = (config: CliConfig, name: string) =>
    name
      .split('.')
      .reduce<unknown>((value, key) => (value as Record<string, unknown>)?.[key], config.options);

  test('as the option of the same name, in its unit (seconds on the CLI, milliseconds in the library)', () => {
    assert.ok(cases.length >= 10, 'every flagged option of the library');
    for (const [name, row, text, expected] of cases) {
      const flag = (row.flag ?? '').split(' ')[0] as string;
      const args = text === true ? [flag] : [flag, text];
      const http = flag === '--http' ? [] : ['--http']; // a flag is given once
      const fromFlag = parseConfig([...http, '--api-key', 'k', ...args], {}) as CliConfig;
      assert.deepEqual(optionOf(fromFlag, name), expected, `${name} from ${flag}`);
      const env = { [row.env as string]: text === true ? '1' : text };
      const fromEnv = parseConfig(['--http', '--api-key', 'k'], env) as CliConfig;
      assert.deepEqual(optionOf(fromEnv, name), expected, `${name} from ${row.env}`);
    }
  });
});
