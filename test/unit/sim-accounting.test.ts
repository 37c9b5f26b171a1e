// Per-device accounting: duplicates are counted apart from loss, reordering is seen, loss is
// computed against what was sent.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DeviceAccount } from '../../firmware-sim/checker.js'
import { backoffDelayMs } from '../../firmware-sim/backoff.js'
import { parseFault } from '../../firmware-sim/fault/schedule.js'

test('duplicates, reorders and loss are counted separately', () => {
  const a = new DeviceAccount()
  for (const seq of [1, 2, 2, 4, 3, 5, 5, 5]) a.record(seq)
  assert.equal(a.received, 5)
  assert.equal(a.deliveries, 8)
  assert.equal(a.duplicates, 3)
  assert.equal(a.reordered, 1) // 3 after 4
  assert.equal(a.receivedUpTo(7), 5)
  assert.deepEqual(a.missing(7, 10), [6, 7])
})

test('any arrival sequence: received + missing = sent, deliveries = received + duplicates', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 500 }), fc.array(fc.integer({ min: 1, max: 500 }), { maxLength: 1000 }), (sent, arrivals) => {
    const a = new DeviceAccount()
    const ok = arrivals.filter((s) => s <= sent)
    for (const s of ok) a.record(s)
    assert.equal(a.received + a.missing(sent, Infinity).length, sent)
    assert.equal(a.deliveries, a.received + a.duplicates)
    assert.equal(a.received, new Set(ok).size)
  }))
})

test('reconnect backoff grows exponentially, is capped and jittered', () => {
  const rng = (): number => 0.5
  assert.equal(backoffDelayMs(0, 100, 10_000, rng), 75)
  assert.equal(backoffDelayMs(3, 100, 10_000, rng), 600)
  assert.equal(backoffDelayMs(20, 100, 10_000, rng), 7500)
  for (let i = 0; i < 100; i++) {
    const d = backoffDelayMs(4, 100, 10_000, Math.random)
    assert.ok(d >= 800 && d <= 1600)
  }
})

test('fault specs parse, and a bad one names its field', () => {
  assert.deepEqual(parseFault('at=10s cut=5s', 'fault[0]'), { kind: 'cut', atMs: 10_000, durationMs: 5000, amount: 0, spec: 'at=10s cut=5s' })
  assert.equal(parseFault('at=1s throttle=10KiB for=2s', 'f').amount, 10 * 1024)
  assert.equal(parseFault('latency=50ms for=1s', 'f').amount, 50)
  assert.throws(() => parseFault('at=1s cut=soon', 'fault[1]'), /fault\[1\]\.cut/)
  assert.throws(() => parseFault('at=1s latency=5ms', 'fault[0]'), /fault\[0\]\.for/)
  assert.throws(() => parseFault('at=1s explode=1s', 'fault[2]'), /fault\[2\].*unknown key "explode"/)
})
