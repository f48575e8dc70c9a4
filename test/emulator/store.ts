// In-memory objects of one resource with resourceVersions, a bounded event history and watchers.
import { alreadyExists, gone, notFound } from './status.ts';
import type { KObject } from './types.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent<T> {
  rv: number;
  type: EventType;
  object: T;
}

/** One resourceVersion sequence shared by every store, like etcd's revision. */
export class Clock {
  private rv = 1000;
  now(): number {
    return this.rv;
  }
  next(): number {
    return ++this.rv;
  }
}

const HISTORY = 20000;

export class Store<T extends KObject> {
  readonly resource: string;
  private readonly clock: Clock;
  private readonly items = new Map<string, T>();
  private sortedKeys: string[] | null = null;
  private readonly history: StoreEvent<T>[] = [];
  private readonly watchers = new Set<(ev: StoreEvent<T>) => void>();

  constructor(resource: string, clock: Clock) {
    this.resource = resource;
    this.clock = clock;
  }

  static key(namespace: string | undefined, name: string): string {
    return namespace ? `${namespace}/${name}` : name;
  }

  get size(): number {
    return this.items.size;
  }

  find(namespace: string | undefined, name: string): T | undefined {
    return this.items.get(Store.key(namespace, name));
  }

  get(namespace: string | undefined, name: string): T {
    const o = this.find(namespace, name);
    if (!o) throw notFound(this.resource, name);
    return o;
  }

  /** Items in key order (namespace, then name), as etcd returns them; `after` resumes a page. */
  list(namespace?: string, after?: string): T[] {
    if (!this.sortedKeys) this.sortedKeys = [...this.items.keys()].sort();
    let keys = this.sortedKeys;
    if (namespace) keys = keys.filter((k) => k.startsWith(`${namespace}/`));
    if (after !== undefined) keys = keys.filter((k) => k > after);
    return keys.map((k) => this.items.get(k) as T);
  }

  create(obj: T): T {
    const key = Store.key(obj.metadata.namespace, obj.metadata.name);
    if (this.items.has(key)) throw alreadyExists(this.resource, obj.metadata.name);
    this.items.set(key, obj);
    this.sortedKeys = null;
    this.emit('ADDED', obj);
    return obj;
  }

  /** Records a change made to a stored object in place. */
  touch(obj: T): void {
    if (this.items.get(Store.key(obj.metadata.namespace, obj.metadata.name)) !== obj) return;
    this.emit('MODIFIED', obj);
  }

  remove(obj: T): void {
    const key = Store.key(obj.metadata.namespace, obj.metadata.name);
    if (this.items.get(key) !== obj) return;
    this.items.delete(key);
    this.sortedKeys = null;
    this.emit('DELETED', obj);
  }

  /** Replays events newer than `fromRv` (all current objects as ADDED when absent), then follows. */
  watch(fromRv: number | undefined, cb: (ev: StoreEvent<T>) => void): () => void {
    if (fromRv === undefined) {
      const rv = this.clock.now();
      for (const o of this.list()) cb({ rv, type: 'ADDED', object: o });
    } else {
      const oldest = this.history[0]?.rv ?? this.clock.now();
      if (fromRv < oldest - 1 && this.history.length >= HISTORY) {
        throw gone(`too old resource version: ${fromRv} (${oldest})`);
      }
      for (const ev of this.history) if (ev.rv > fromRv) cb(ev);
    }
    this.watchers.add(cb);
    return () => this.watchers.delete(cb);
  }

  private emit(type: EventType, obj: T): void {
    const rv = this.clock.next();
    obj.metadata.resourceVersion = String(rv);
    const ev: StoreEvent<T> = { rv, type, object: structuredClone(obj) };
    this.history.push(ev);
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    for (const w of this.watchers) w(ev);
  }
}
