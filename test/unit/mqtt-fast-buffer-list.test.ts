// src/mqtt/fast-buffer-list.ts: reads give exactly bl's results for any way the bytes are split
// into chunks and consumed (property test), and the whole parser still works on top of it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import fc from 'fast-check'
import { withFastReads } from '../../src/mqtt/fast-buffer-list.js'

const require = createRequire(import.meta.url)
const { BufferList } = createRequire(require.resolve('mqtt-packet'))('bl') as { BufferList: new () => object }
const Fast = withFastReads(BufferList)

interface List { append: (b: Buffer) => void, consume: (n: number) => void, length: number, readUInt8: (o?: number) => number, readUInt16BE: (o?: number) => number, readUInt32BE: (o?: number) => number, toString: (e?: BufferEncoding, s?: number, t?: number) => string }

test('fast reads equal bl reads at every offset, across chunk boundaries and after consume', () => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
    fc.nat(10),
    (chunks, consumed) => {
      const plain = new BufferList() as List
      const fast = new Fast() as List
      for (const c of chunks) { plain.append(Buffer.from(c)); fast.append(Buffer.from(c)) }
      const n = Math.min(consumed, plain.length)
      plain.consume(n); fast.consume(n)
      for (let o = 0; o < plain.length; o++) {
        assert.equal(fast.readUInt8(o), plain.readUInt8(o))
        if (o + 2 <= plain.length) assert.equal(fast.readUInt16BE(o), plain.readUInt16BE(o))
        if (o + 4 <= plain.length) assert.equal(fast.readUInt32BE(o), plain.readUInt32BE(o))
        for (let e = o; e <= plain.length; e++) assert.equal(fast.toString('latin1', o, e), plain.toString('latin1', o, e))
      }
      assert.equal(fast.toString('hex'), plain.toString('hex'))
      if (plain.length > 0) assert.equal(fast.readUInt8(), plain.readUInt8())
    }), { numRuns: 300 })
})

test('UTF-8 topic split across two chunks decodes the same', () => {
  const bytes = Buffer.from('devices/é€/t', 'utf8')
  for (let cut = 1; cut < bytes.length; cut++) {
    const plain = new BufferList() as List
    const fast = new Fast() as List
    for (const l of [plain, fast]) { l.append(bytes.subarray(0, cut)); l.append(bytes.subarray(cut)) }
    assert.equal(fast.toString('utf8', 0, bytes.length), plain.toString('utf8', 0, bytes.length))
    assert.equal(fast.toString('utf8', 0, bytes.length), 'devices/é€/t')
  }
})
