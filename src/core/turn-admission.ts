/**
 * A FIFO of callers waiting for room in a bounded queue (the pool's shards, the sequencer's
 * pending budget), woken only as many at a time as the room takes.
 *
 * Waking every waiter that fits the freed room does not work when there are thousands of them
 * (one per upstream host): the room does not shrink until the woken submit, so all of them wake,
 * the first few fill the queue and the rest pause again, a cost paid on every commit or worker
 * result. Instead each woken waiter reserves its `need` until the end of the event-loop turn
 * (woken callers submit in the turn they are woken), and `fits` sees those reservations. The next
 * turn drops them and admits again, so waiters behind ones that submitted nothing are not left
 * waiting for a release that may never come.
 */
export interface TurnAdmissionWaiter {
  resolve(): void
}

export class TurnAdmission<W extends TurnAdmissionWaiter> {
  #waiters: W[] = []
  #reserved = 0 // sum of need() over the waiters woken this turn
  #woken = 0 // how many were woken this turn
  #roundScheduled = false
  readonly #fits: (head: W, reserved: number, woken: number) => boolean
  readonly #need: (w: W) => number

  /**
   * `fits`: may the head waiter wake now, given what this turn's woken ones reserved?
   * `need`: what a woken waiter reserves until the end of the turn.
   */
  constructor(fits: (head: W, reserved: number, woken: number) => boolean, need: (w: W) => number) {
    this.#fits = fits
    this.#need = need
  }

  get length(): number {
    return this.#waiters.length
  }

  /** Queues a waiter; call `admit()` when it may already fit. */
  push(w: W): void {
    this.#waiters.push(w)
  }

  /** Wakes waiters in arrival order while they fit; call whenever room may have come back. */
  admit(): void {
    const q = this.#waiters
    let woke = false
    while (q.length > 0 && this.#fits(q[0]!, this.#reserved, this.#woken)) {
      const w = q.shift()!
      this.#reserved += this.#need(w)
      this.#woken++
      w.resolve()
      woke = true
    }
    if (woke && !this.#roundScheduled) {
      this.#roundScheduled = true
      setImmediate(() => {
        this.#roundScheduled = false
        this.#reserved = 0
        this.#woken = 0
        this.admit()
      })
    }
  }
}
