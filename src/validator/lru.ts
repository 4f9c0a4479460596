// Bounded LRU over a Map (insertion order = recency order): get() re-inserts, set() evicts the
// oldest entries beyond `max`. Optional per-entry expiry; an expired entry reads as absent.

export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; expiresAt: number }>()
  readonly max: number
  private readonly now: () => number
  evictions = 0

  constructor(max: number, now: () => number = Date.now) {
    if (!(max >= 1)) throw new RangeError('LRU needs room for at least one entry')
    this.max = max
    this.now = now
  }

  get size(): number {
    return this.map.size
  }

  get(key: K): V | undefined {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    if (e.expiresAt <= this.now()) {
      this.map.delete(key)
      return undefined
    }
    this.map.delete(key)
    this.map.set(key, e)
    return e.value
  }

  /** Read without touching recency or expiry (stats, tests). */
  peek(key: K): V | undefined {
    return this.map.get(key)?.value
  }

  /** `ttlMs` undefined = never expires. */
  set(key: K, value: V, ttlMs?: number): void {
    const expiresAt = ttlMs === undefined ? Infinity : this.now() + ttlMs
    this.map.delete(key)
    this.map.set(key, { value, expiresAt })
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as K
      this.map.delete(oldest)
      this.evictions++
    }
  }

  delete(key: K): boolean {
    return this.map.delete(key)
  }

  clear(): void {
    this.map.clear()
  }
}
