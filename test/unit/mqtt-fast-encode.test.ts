// src/mqtt/fast-encode.ts must produce exactly mqtt-packet's bytes for the packets it encodes
// (and leave every other packet to mqtt-packet), and its output must parse back to the packet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { encodeHotPacket } from '../../src/mqtt/fast-encode.js'

function parseOne (buf: Buffer): mqttPacket.Packet {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const out: mqttPacket.Packet[] = []
  parser.on('packet', (p) => out.push(p))
  parser.on('error', (err) => { throw err })
  parser.parse(buf)
  assert.equal(out.length, 1)
  return out[0]
}

const publishArb = fc.record({
  qos: fc.constantFrom(0, 1, 2),
  dup: fc.boolean(),
  retain: fc.boolean(),
  // Unicode topics: the length prefix counts UTF-8 bytes, not characters.
  topic: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
  payload: fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), fc.string({ maxLength: 50 })),
  messageId: fc.integer({ min: 1, max: 65535 })
})

test('PUBLISH: same bytes as mqtt-packet, parses back (property)', () => {
  fc.assert(fc.property(publishArb, (p) => {
    const packet = { cmd: 'publish' as const, ...p }
    const ours = encodeHotPacket(packet, undefined)
    assert.ok(ours !== undefined)
    assert.deepEqual(ours, mqttPacket.generate(packet))
    const back = parseOne(ours) as mqttPacket.IPublishPacket
    assert.equal(back.topic, p.topic)
    assert.equal(back.qos, p.qos)
    assert.equal(back.retain, p.retain)
    assert.deepEqual(back.payload, Buffer.from(p.payload))
    if (p.qos > 0) assert.equal(back.messageId, p.messageId)
  }), { numRuns: 500 })
})

test('PUBLISH with a payload that needs a 2- and 3-byte remaining length', () => {
  for (const size of [127, 128, 16_383, 16_384, 200_000]) {
    const packet = { cmd: 'publish' as const, qos: 1 as const, dup: false, retain: false, topic: 't/x', payload: Buffer.alloc(size, 7), messageId: 9 }
    assert.deepEqual(encodeHotPacket(packet, 4), mqttPacket.generate(packet), `payload ${size}`)
  }
})

test('acks: same bytes as mqtt-packet', () => {
  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
    for (const messageId of [0, 1, 255, 256, 65535]) {
      const packet = { cmd, messageId }
      assert.deepEqual(encodeHotPacket(packet, 4), mqttPacket.generate(packet as mqttPacket.Packet), `${cmd} ${messageId}`)
    }
  }
})

test('left to mqtt-packet: MQTT 5, other packets, invalid fields, PUBREL marked dup', () => {
  const cases: unknown[] = [
    { cmd: 'connack', returnCode: 0, sessionPresent: false },
    { cmd: 'suback', messageId: 1, granted: [0] },
    { cmd: 'pingresp' },
    { cmd: 'publish', qos: 1, topic: 't', payload: Buffer.alloc(1) }, // no messageId
    { cmd: 'publish', qos: 1, topic: 't', payload: Buffer.alloc(1), messageId: 70_000 },
    { cmd: 'publish', qos: 3, topic: 't', payload: Buffer.alloc(1), messageId: 1 },
    { cmd: 'publish', qos: 0, topic: Buffer.from('t'), payload: Buffer.alloc(1) },
    { cmd: 'publish', qos: 0, topic: 't', payload: 42 },
    { cmd: 'publish', qos: 0, topic: 't', payload: Buffer.alloc(1), properties: { contentType: 'x' } },
    { cmd: 'puback', messageId: 'x' },
    { cmd: 'pubrel', messageId: 1, dup: true },
    null
  ]
  for (const c of cases) assert.equal(encodeHotPacket(c, 4), undefined, JSON.stringify(c))
  assert.equal(encodeHotPacket({ cmd: 'puback', messageId: 1 }, 5), undefined)
})
