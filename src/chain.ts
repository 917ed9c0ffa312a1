/** What a member of a Chain carries: its neighbours. */
export interface Linked<T> {
  prev: T | undefined;
  next: T | undefined;
}

/**
 * A doubly linked list whose members carry their own links: adding one at the end or taking one out
 * allocates nothing and takes the same time however long the list (the body deadlines, the idle
 * connections). A member is in one chain at a time; the caller knows which. Taking out a member that is
 * in no chain (never added, or taken out already) leaves the chain as it is.
 */
export class Chain<T extends Linked<T>> {
  head: T | undefined;
  tail: T | undefined;

  push(member: T): void {
    member.prev = this.tail;
    member.next = undefined;
    if (this.tail === undefined) this.head = member;
    else this.tail.next = member;
    this.tail = member;
  }

  remove(member: T): void {
    if (member.prev !== undefined) member.prev.next = member.next;
    else if (this.head === member) this.head = member.next;
    else return; // no member: linked to nothing, and not the head
    if (member.next === undefined) this.tail = member.prev;
    else member.next.prev = member.prev;
    member.prev = undefined;
    member.next = undefined;
  }
}
