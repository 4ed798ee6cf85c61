import type { SubscriptionRecord } from './stores/types.js';

/** A subscription held by a session, as indexed in the trie. */
export interface Subscription<S> extends SubscriptionRecord {
  session: S;
  /** The filter matched against topics (without a `$share/{group}/` prefix). */
  topicFilter: string;
  /** Shared subscription group, undefined for a plain subscription. */
  group: string | undefined;
}

/** Members of one shared subscription group on one filter. */
export interface SharedGroup<S> {
  name: string;
  topicFilter: string;
  members: Subscription<S>[];
  /** Round-robin position / sticky choice. */
  next: number;
  sticky: Subscription<S> | undefined;
}

class Node<S> {
  readonly children = new Map<string, Node<S>>();
  subs: Map<S, Subscription<S>> | undefined;
  shared: Map<string, SharedGroup<S>> | undefined;

  get isEmpty(): boolean {
    return (
      this.children.size === 0 && (this.subs === undefined || this.subs.size === 0) && (this.shared === undefined || this.shared.size === 0)
    );
  }
}

/**
 * Topic filters in a trie of levels: matching a topic walks one path per literal level plus the
 * `+` and `#` branches, so its cost depends on the topic's depth and the wildcards in use, not on
 * the number of subscriptions. Shared subscriptions hang off the same nodes, one group per name.
 */
export class SubscriptionTrie<S> {
  readonly #root = new Node<S>();
  #count = 0;

  get size(): number {
    return this.#count;
  }

  add(sub: Subscription<S>): void {
    let node = this.#root;
    for (const level of sub.topicFilter.split('/')) {
      let child = node.children.get(level);
      if (child === undefined) node.children.set(level, (child = new Node()));
      node = child;
    }
    if (sub.group === undefined) {
      node.subs ??= new Map();
      if (!node.subs.has(sub.session)) this.#count++;
      node.subs.set(sub.session, sub);
      return;
    }
    node.shared ??= new Map();
    let g = node.shared.get(sub.group);
    if (g === undefined) {
      g = { name: sub.group, topicFilter: sub.topicFilter, members: [], next: 0, sticky: undefined };
      node.shared.set(sub.group, g);
    }
    const i = g.members.findIndex((m) => m.session === sub.session);
    if (i >= 0) g.members[i] = sub;
    else {
      g.members.push(sub);
      this.#count++;
    }
  }

  remove(sub: Pick<Subscription<S>, 'session' | 'topicFilter' | 'group'>): boolean {
    const path: Array<[Node<S>, string]> = [];
    let node = this.#root;
    for (const level of sub.topicFilter.split('/')) {
      const child = node.children.get(level);
      if (child === undefined) return false;
      path.push([node, level]);
      node = child;
    }
    let removed = false;
    if (sub.group === undefined) removed = node.subs?.delete(sub.session) ?? false;
    else {
      const g = node.shared?.get(sub.group);
      if (g !== undefined) {
        const i = g.members.findIndex((m) => m.session === sub.session);
        if (i >= 0) {
          g.members.splice(i, 1);
          if (g.sticky?.session === sub.session) g.sticky = undefined;
          removed = true;
          if (g.members.length === 0) node.shared?.delete(sub.group);
        }
      }
    }
    if (removed) this.#count--;
    // Prune empty nodes so a million one-off topics do not leave a million dead leaves.
    for (let i = path.length - 1; i >= 0 && node.isEmpty; i--) {
      const [parent, level] = path[i] as [Node<S>, string];
      parent.children.delete(level);
      node = parent;
    }
    return removed;
  }

  /**
   * Calls `onSub` for every plain subscription and `onGroup` for every shared group whose filter
   * matches `topic`. Wildcards at the first level skip topics starting with '$' [MQTT-4.7.2-1].
   */
  match(topic: string, onSub: (s: Subscription<S>) => void, onGroup: (g: SharedGroup<S>) => void): void {
    const levels = topic.split('/');
    const dollar = topic.charCodeAt(0) === 0x24;
    this.#walk(this.#root, levels, 0, dollar, onSub, onGroup);
  }

  #walk(
    node: Node<S>,
    levels: string[],
    i: number,
    dollar: boolean,
    onSub: (s: Subscription<S>) => void,
    onGroup: (g: SharedGroup<S>) => void,
  ): void {
    const wild = !(dollar && i === 0);
    if (wild) {
      // '#' matches this level and everything below, including the parent itself [MQTT-4.7.1-2]
      const hash = node.children.get('#');
      if (hash !== undefined) emit(hash, onSub, onGroup);
    }
    if (i === levels.length) {
      emit(node, onSub, onGroup);
      return;
    }
    const lit = node.children.get(levels[i] as string);
    if (lit !== undefined) this.#walk(lit, levels, i + 1, dollar, onSub, onGroup);
    if (wild) {
      const plus = node.children.get('+');
      if (plus !== undefined) this.#walk(plus, levels, i + 1, dollar, onSub, onGroup);
    }
  }
}

function emit<S>(node: Node<S>, onSub: (s: Subscription<S>) => void, onGroup: (g: SharedGroup<S>) => void): void {
  if (node.subs !== undefined) for (const s of node.subs.values()) onSub(s);
  if (node.shared !== undefined) for (const g of node.shared.values()) onGroup(g);
}
