import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers-spawn.ts';

// What `npm pack` puts in the package a partner installs. Before, it was whatever lay in dist/: a
// checkout never built gave a package of its README alone, and a built one the outputs of sources long
// renamed and the 0.8 MB single-file bundle, with no licence and source maps naming files not shipped.

/** The paths `npm pack` would put in the package, taken from dist/ as it is (no build: --ignore-scripts). */
function packed(): Set<string> {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [pack] = JSON.parse(out) as Array<{ files: Array<{ path: string }> }>;
  return new Set((pack?.files ?? []).map((file) => file.path));
}

/** Every file package.json names for a consumer: main, types, bin and each condition of each export. */
function entryPoints(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const found: string[] = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
  const walk = (target: unknown): void => {
    if (typeof target === 'string') found.push(target);
    else if (typeof target === 'object' && target !== null) Object.values(target).forEach(walk);
  };
  walk(pkg.exports);
  return found.map((path) => posix.normalize(path));
}

test('the package holds every entry point, its licence and the sources its maps name; no build leftovers', () => {
  const files = packed();
  for (const path of [...entryPoints(), 'LICENSE', 'README.md', 'package.json']) {
    assert.ok(files.has(path), `${path} is in the package`);
  }
  for (const path of files) {
    assert.ok(!/^dist\/(?:sea\/|segment-endpoint)/.test(path), `${path}: a build for VMs, not for npm`);
    assert.ok(/^(?:dist|src)\/|^(?:LICENSE|README\.md|package\.json)$/.test(path), `${path}: nothing else`);
  }
  // Every library file has its source (a source renamed leaves its old outputs behind otherwise), and
  // every source a map names is shipped: a stack trace under --enable-source-maps names a file that exists.
  for (const path of files) {
    const library = /^dist\/(.+)\.js$/.exec(path)?.[1];
    if (library !== undefined) {
      assert.ok(files.has(`src/${library}.ts`), `${path} has its source in src/`);
    }
    if (!path.endsWith('.map') || !existsSync(join(ROOT, path))) continue;
    const { sources } = JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as { sources: string[] };
    // Not a file: the bundle's stand-in for the package's own errors module (scripts/bundle-cli.ts).
    for (const source of sources.filter((name) => !/^[a-z]+:/.test(name))) {
      const named = posix.normalize(posix.join(dirname(path), source));
      assert.ok(files.has(named), `${path} names ${named}, which is in the package`);
    }
  }
});
