import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Chain, type Linked } from '../src/chain.ts';

// The links behind the body deadlines and the idle connections: members carry their own links.

class Member implements Linked<Member> {
  prev: Member | undefined;
  next: Member | undefined;
  constructor(readonly name: string) {}
}

function names(chain: Chain<Member>): string[] {
  const out: string[] = [];
  for (let m = chain.head; m !== undefined; m = m.next) out.push(m.name);
  const back: string[] = [];
  for (let m = chain.tail; m !== undefined; m = m.prev) back.unshift(m.name);
  assert.deepEqual(back, out, 'the links backwards agree with the links forwards');
  return out;
}

describe('Chain', () => {
  it('takes out the head, the tail and a member in between', () => {
    const chain = new Chain<Member>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new Member(n)) as [Member, Member, Member, Member];
    for (const m of [a, b, c, d]) chain.push(m);
    assert.deepEqual(names(chain), ['a', 'b', 'c', 'd']);
    chain.remove(b);
    assert.deepEqual(names(chain), ['a', 'c', 'd']);
    chain.remove(a);
    assert.deepEqual(names(chain), ['c', 'd']);
    chain.remove(d);
    assert.deepEqual(names(chain), ['c']);
    chain.remove(c);
    assert.deepEqual(names(chain), []);
    chain.push(b);
    assert.deepEqual(names(chain), ['b']);
  });

  it('leaves the list as it is when asked to take out a member it does not hold', () => {
    const chain = new Chain<Member>();
    const [a, b] = [new Member('a'), new Member('b')];
    chain.push(a);
    chain.push(b);
    const stranger = new Member('stranger');
    chain.remove(stranger);
    assert.deepEqual(names(chain), ['a', 'b']);
    chain.remove(a);
    chain.remove(a); // taken out twice: the second time it is no member
    assert.deepEqual(names(chain), ['b']);
  });
});
