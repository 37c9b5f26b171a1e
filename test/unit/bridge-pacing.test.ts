import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateCap, backoffMs } from '../../edge/bridge/pacing.js'

test('backoff doubles per attempt up to the maximum, with equal jitter', () => {
  assert.equal(backoffMs(0, 100, 10_000, () => 0), 50)
  assert.equal(backoffMs(0, 100, 10_000, () => 1), 100)
  assert.equal(backoffMs(3, 100, 10_000, () => 1), 800)
  assert.equal(backoffMs(20, 100, 10_000, () => 1), 10_000)
  assert.equal(backoffMs(20, 100, 10_000, () => 0), 5_000)
  assert.equal(backoffMs(1000, 100, 10_000, () => 0.5), 7_500)
})

test('the rate cap lets one second of burst through, then paces by the deficit', () => {
  let now = 0
  const cap = new RateCap(1000, 0, () => now)
  assert.equal(cap.delayMs(), 0)
  assert.deepEqual(cap.budget(16_384, 1 << 20), [1000, 1 << 20])
  cap.consume(1000, 100_000)
  assert.ok(cap.delayMs() > 0)
  now += 500
  assert.ok(cap.delayMs() === 0)
  assert.deepEqual(cap.budget(16_384, 1 << 20), [500, 1 << 20])
  const bytes = new RateCap(0, 10_000, () => now)
  bytes.consume(1, 25_000)
  assert.equal(bytes.delayMs(), 1501)
  assert.equal(new RateCap(0, 0, () => now).unlimited, true)
})
