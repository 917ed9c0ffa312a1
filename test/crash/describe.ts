import type { CrashState } from './explore.ts';
import type { ModelFs, Op } from './model-fs.ts';

// A crash state in words, for a test's failure message: where the power went, what it lost, what it left.

/** How a state came about, for a test's failure message. */
export function describeState(fs: ModelFs, state: CrashState): string {
  const last = state.at === 0 ? 'none' : opText(fs, fs.trace[state.at - 1] as Op);
  const files = [...state.files].map(([name, bytes]) => `${name} (${bytes.length} bytes)`);
  return [
    `power cut after operation ${state.at} of ${fs.trace.length} (the last made: ${last})`,
    `  lost: ${state.lost.length === 0 ? 'nothing' : state.lost.join('; ')}`,
    `  left: ${files.join(', ') || 'no files'}`,
    `  answers given: ${[...state.marks].join(' ') || 'none'}`,
  ].join('\n');
}

function opText(fs: ModelFs, op: Op): string {
  const nameOf = (ino: number) => {
    for (const [name, known] of fs.names) if (known === ino) return name;
    const created = fs.trace.find((o) => o.kind === 'create' && o.ino === ino);
    return created?.kind === 'create' ? created.name : `inode ${ino}`;
  };
  switch (op.kind) {
    case 'create':
      return `create ${op.name}`;
    case 'rename':
      return `rename ${op.from} to ${op.to}`;
    case 'syncdir':
      return 'fsync of the directory';
    case 'mkdir':
      return 'mkdir of the directory';
    case 'syncparent':
      return "fsync of the directory's parent";
    case 'write':
      return `write of ${op.bytes.length} bytes at ${op.offset} to ${nameOf(op.ino)}`;
    case 'truncate':
      return `truncate ${nameOf(op.ino)} to ${op.length}`;
    case 'sync':
      return `fdatasync of ${nameOf(op.ino)}`;
    case 'mark':
      return `answer ${op.label}`;
  }
}
