// The simulator's frame reader and payload header: packets split anywhere across chunks come
// out whole and in order; headers round-trip from binary and JSON payloads.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { FrameReader, encodePublish, publishPacketIdOffset } from '../../firmware-sim/mqtt/codec.js'
import { decodeStamp, encodeBinary, encodeJson, type Stamp } from '../../firmware-sim/payload.js'

test('frame reader reassembles PUBLISH packets split at any byte boundary', () => {
  fc.assert(fc.property(
    fc.array(fc.record({ topic: fc.string({ minLength: 1, maxLength: 40 }), size: fc.integer({ min: 0, max: 300 }), qos: fc.constantFrom(0, 1), id: fc.integer({ min: 1, max: 65535 }) }), { minLength: 1, maxLength: 20 }),
    fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 50 }),
    (packets, cuts) => {
      const encoded = packets.map((p) => encodePublish(Buffer.from(p.topic), Buffer.alloc(p.size, 7), p.qos, p.id, false))
      const stream = Buffer.concat(encoded)
      const seen: Array<{ topic: string, size: number, qos: number, id: number }> = []
      const reader = new FrameReader({
        onPacket (type, flags, buf, start, end) {
          assert.equal(type, 3)
          const qos = (flags >> 1) & 3
          const idAt = publishPacketIdOffset(buf, start)
          seen.push({ topic: buf.toString('utf8', start + 2, idAt), size: end - idAt - (qos > 0 ? 2 : 0), qos, id: qos > 0 ? buf.readUInt16BE(idAt) : 0 })
        }
      })
      let pos = 0
      let i = 0
      while (pos < stream.length) {
        const n = Math.min(cuts[i++ % cuts.length], stream.length - pos)
        assert.equal(reader.push(stream.subarray(pos, pos + n)), true)
        pos += n
      }
      assert.deepEqual(seen, packets.map((p) => ({ topic: p.topic, size: p.size, qos: p.qos, id: p.qos > 0 ? p.id : 0 })))
    }
  ), { numRuns: 200 })
})

test('encodePublish matches mqtt-packet, the reference encoder', () => {
  const ours = encodePublish(Buffer.from('devices/a/telemetry'), Buffer.alloc(200, 1), 1, 42, true)
  const ref = mqttPacket.generate({ cmd: 'publish', topic: 'devices/a/telemetry', payload: Buffer.alloc(200, 1), qos: 1, messageId: 42, dup: true, retain: false })
  assert.deepEqual(ours, ref)
})

test('frame reader rejects a malformed remaining length [MQTT-2.2.3]', () => {
  const reader = new FrameReader({ onPacket () { assert.fail('no packet expected') } })
  assert.equal(reader.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), false)
})

test('payload header round-trips from binary and JSON', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 2 ** 31 }), fc.double({ min: 1e12, max: 2e12, noNaN: true }), fc.integer({ min: 24, max: 512 }), (run, dev, seq, ts, size) => {
    const out: Stamp = { run: 0, device: 0, seq: 0, sentAtMs: 0 }
    const bin = encodeBinary(size, run, dev, seq, ts)
    assert.equal(bin.length, size)
    assert.equal(decodeStamp(bin, 0, bin.length, out), true)
    assert.deepEqual(out, { run, device: dev, seq, sentAtMs: ts })
    const json = encodeJson(run, dev, seq, ts, { temperature: 21.5 })
    assert.equal(decodeStamp(json, 0, json.length, out), true)
    assert.deepEqual(out, { run, device: dev, seq, sentAtMs: ts })
  }))
  const out: Stamp = { run: 0, device: 0, seq: 0, sentAtMs: 0 }
  assert.equal(decodeStamp(Buffer.from('{"hello":1}'), 0, 11, out), false)
  assert.equal(decodeStamp(Buffer.from('plain text'), 0, 10, out), false)
})
