// What a misspelt name was probably meant to be: for errors that may name back only what is close to a
// known name (anything else in its place may be a secret, or too long to be worth repeating).

/** The word of `words` within `maxEdits` of `given` (insertions, deletions, substitutions), if any. */
export function nearest(given: string, words: readonly string[], maxEdits = 2): string | undefined {
  let best: string | undefined;
  let bestEdits = maxEdits + 1;
  for (const word of words) {
    const distance = edits(given, word);
    if (distance < bestEdits) {
      best = word;
      bestEdits = distance;
    }
  }
  return best;
}

/** Levenshtein distance, one row at a time. */
function edits(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return Math.abs(a.length - b.length);
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const replace = (row[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      next[j] = Math.min((row[j] as number) + 1, (next[j - 1] as number) + 1, replace);
    }
    row = next;
  }
  return row[b.length] as number;
}
