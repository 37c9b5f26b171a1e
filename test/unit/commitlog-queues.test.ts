// The commitlog's two queues on their own (durable-callbacks.ts, offset-waiters.ts): the parts
// that the log's own tests reach only rarely: the durable-callback queue's compaction past 65,536
// fired slots (a backlog that never drains completely), re-entrant appends from a callback, and
// the two resolve rules of the waiters (flush: offset <= end; the others: end > offset).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DurableCallbacks } from '../../src/commitlog/durable-callbacks.js'
import { OffsetWaiters } from '../../src/commitlog/offset-waiters.js'

test('durable callbacks fire once each, in order, across the compaction of a backlog that never drains', () => {
  const q = new DurableCallbacks()
  const fired: number[] = []
  const failed: number[] = []
  const cb = (i: number) => (err: Error | null): void => { if (err === null) fired.push(i); else failed.push(i) }
  let next = 0
  // Each round: 50,000 more pending, fire up to 10,000 short of the newest: the queue never
  // empties, so the fired prefix passes 65,536 and the backlog is moved to the front.
  for (let round = 0; round < 4; round++) {
    for (let k = 0; k < 50_000; k++, next++) q.push(cb(next), next + 1)
    q.fire(next - 10_000)
    assert.equal(fired.length, next - 10_000, `round ${round}: every callback up to the end fired`)
    // Again with the same end (after a compaction too): nothing more is covered.
    q.fire(next - 10_000)
    assert.equal(fired.length, next - 10_000, `round ${round}: none fired before its end is reached`)
  }
  q.fire(next)
  assert.equal(fired.length, next)
  for (let i = 0; i < fired.length; i++) assert.equal(fired[i], i, 'in append order, each once')
  // Emptied: a later push starts over, and failPending fails exactly the pending ones.
  q.push(cb(next), next + 1)
  q.push(cb(next + 1), next + 2)
  q.fire(next + 1)
  q.failPending(new Error('disk gone'))
  assert.deepEqual(fired.slice(-1), [next])
  assert.deepEqual(failed, [next + 1])
  q.fire(Infinity)
  assert.equal(fired.length, next + 1, 'nothing fires twice after failPending')
})

test('a durable callback that pushes another one gets it fired in the same pass when covered', () => {
  const q = new DurableCallbacks()
  const order: string[] = []
  q.push(() => {
    order.push('a')
    q.push(() => { order.push('b') }, 2)
    q.push(() => { order.push('c') }, 9)
  }, 1)
  q.fire(5)
  assert.deepEqual(order, ['a', 'b'])
  q.fire(9)
  assert.deepEqual(order, ['a', 'b', 'c'])
})

test('offset waiters: resolveUpTo includes the offset (flush), resolvePassed needs the end past it', async () => {
  const flush = new OffsetWaiters()
  const data = new OffsetWaiters()
  const done: string[] = []
  const f10 = flush.wait(10).then(() => { done.push('flush 10') })
  const f11 = flush.wait(11).then(() => { done.push('flush 11') })
  const d10 = data.wait(10).then(() => { done.push('data 10') })
  let queuedLength = -1
  const d11 = data.wait(11, () => { queuedLength = data.length }).then(() => { done.push('data 11') })
  assert.equal(queuedLength, 2, 'the queued hook runs with the waiter already in the list')
  assert.equal(data.anyPassedBy(10), false)
  assert.equal(data.anyPassedBy(11), true)
  const settle = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
  flush.resolveUpTo(10)
  data.resolvePassed(10)
  await settle()
  assert.deepEqual(done, ['flush 10'], 'end 10 covers a flush to 10, not data from offset 10')
  assert.equal(flush.length, 1)
  assert.equal(data.length, 2)
  data.resolvePassed(11)
  await settle()
  assert.deepEqual(done, ['flush 10', 'data 10'])
  assert.equal(data.length, 1)
  await Promise.all([f10, d10])
  const err = new Error('closed')
  flush.rejectAll(err)
  data.rejectAll(err)
  await assert.rejects(f11, /closed/)
  await assert.rejects(d11, /closed/)
  assert.equal(flush.length + data.length, 0)
})
