import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TurnAdmission } from '../../../src/core/turn-admission.ts'

const nextTurn = () => new Promise((r) => setImmediate(r))

test('TurnAdmission: arrival order, reservations held for the turn, released and re-admitted on the next', async () => {
  let free = 10 // room left in the guarded queue
  const woken: string[] = []
  const seen: Array<[number, number]> = []
  const q = new TurnAdmission<{ id: string; need: number; resolve: () => void }>(
    (head, reserved, count) => {
      seen.push([reserved, count])
      return head.need <= free - reserved
    },
    (w) => w.need,
  )
  const add = (id: string, need: number) => q.push({ id, need, resolve: () => woken.push(id) })
  add('a', 4)
  add('b', 4)
  add('c', 4)
  add('d', 3)
  assert.equal(q.length, 4)
  q.admit()
  // a and b fit (8 of 10 reserved); c does not, and d waits behind it (arrival order)
  assert.deepEqual(woken, ['a', 'b'])
  assert.deepEqual(seen.slice(0, 3), [
    [0, 0],
    [4, 1],
    [8, 2],
  ])
  q.admit() // same turn: the reservations still stand
  assert.deepEqual(woken, ['a', 'b'])
  // a submitted its 4, b gave up: next turn the reservations are gone, c fits (4 of 6), d does not
  free -= 4
  await nextTurn()
  assert.deepEqual(woken, ['a', 'b', 'c'])
  // c submitted: 2 left, d still does not fit, and with nobody woken no further round runs
  free -= 4
  await nextTurn()
  await nextTurn()
  assert.deepEqual(woken, ['a', 'b', 'c'])
  assert.equal(q.length, 1)
  // a release: the owner calls admit()
  free += 6
  q.admit()
  assert.deepEqual(woken, ['a', 'b', 'c', 'd'])
  assert.equal(q.length, 0)
})
