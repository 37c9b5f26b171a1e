// Bad input on the bridge: wrong token, malformed frames, an oversized batch, a batch claiming
// another edge's id. Each is refused with a clear error on that connection only; the cloud node
// (a real process) keeps serving a well-behaved edge throughout.
import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir, waitFor } from '../helpers/net.js'
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.js'
import { FrameType, RefuseCode, encodeFrame } from '../../src/protocol/bridge-frames.js'
import { openBridge, type BridgeConn } from '../helpers/bridge-conn.js'

let cloud: CloudProcess
let dir: { path: string, remove: () => Promise<void> }
const MAX_FRAME = 64 * 1024

before(async () => {
  dir = await tempDir('bridge-bad')
  cloud = await startCloudProcess(['--data-dir', dir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'good=tok-good', '--edge-token', 'other=tok-other', '--bridge-max-frame-bytes', String(MAX_FRAME), '--log-level', 'warn'])
})
after(async () => {
  await cloud?.kill()
  await dir?.remove()
})

type Conn = BridgeConn
async function open (): Promise<Conn> { return await openBridge(cloud.bridgeUrl) }

async function hello (c: Conn, edgeId: string, token: string): Promise<void> {
  c.ws.send(encodeFrame({ type: FrameType.HELLO, edgeId, token, checkpoint: 0, lastDownlinkSeq: 0 }))
  await waitFor('an answer to HELLO', () => c.frames.length > 0)
}

const rec = (offset: number, payload = 'x'): { offset: number, nextOffset: number, timestampMs: number, qos: 1, retain: false, topic: string, payload: Buffer } =>
  ({ offset, nextOffset: offset + 10, timestampMs: Date.now(), qos: 1, retain: false, topic: 'devices/1/t', payload: Buffer.from(payload) })

// A well-behaved edge, connected for the whole file: it must keep working after every bad one.
async function goodEdgeStillServed (offset: number): Promise<void> {
  const c = await open()
  await hello(c, 'good', 'tok-good')
  assert.equal(c.frames[0].type, FrameType.WELCOME)
  c.ws.send(encodeFrame({ type: FrameType.BATCH, edgeId: 'good', fromOffset: offset, toOffset: offset + 10, records: [rec(offset)] }))
  await waitFor('ACK', () => c.frames.some((f) => f.type === FrameType.ACK))
  const ack = c.frames.find((f) => f.type === FrameType.ACK)
  assert.deepEqual(ack, { type: FrameType.ACK, committedOffset: offset + 10 })
  c.ws.close()
}

test('a wrong token is refused with REFUSE(AUTH) and close 4001', async () => {
  const c = await open()
  await hello(c, 'good', 'wrong')
  assert.equal(c.frames[0].type, FrameType.REFUSE)
  assert.equal((c.frames[0] as { code: number }).code, RefuseCode.AUTH)
  assert.equal((await c.closed).code, 4001)
  const u = await open()
  await hello(u, 'nobody', 'x')
  assert.equal(u.frames[0].type, FrameType.REFUSE)
  await goodEdgeStillServed(0)
})

test('malformed frames: garbage, text, a batch before HELLO are closed with ERROR(TRIB_ERR_BRIDGE_FRAME)', async () => {
  for (const bad of [Buffer.from('garbage bytes here'), 'text frame', encodeFrame({ type: FrameType.BATCH, edgeId: 'good', fromOffset: 0, toOffset: 10, records: [rec(0)] })]) {
    const c = await open()
    c.ws.send(bad)
    const closed = await c.closed
    assert.equal(closed.code, 4002)
    const err = c.frames.find((f) => f.type === FrameType.ERROR) as { code: string, message: string } | undefined
    assert.equal(err?.code, 'TRIB_ERR_BRIDGE_FRAME')
  }
  // A truncated batch after a good HELLO.
  const c = await open()
  await hello(c, 'good', 'tok-good')
  const frame = encodeFrame({ type: FrameType.BATCH, edgeId: 'good', fromOffset: 10, toOffset: 20, records: [rec(10)] })
  c.ws.send(frame.subarray(0, frame.length - 3))
  assert.equal((await c.closed).code, 4002)
  await goodEdgeStillServed(10)
})

test('an oversized batch is refused (close 1009) without harming others', async () => {
  const c = await open()
  await hello(c, 'other', 'tok-other')
  c.ws.send(encodeFrame({ type: FrameType.BATCH, edgeId: 'other', fromOffset: 0, toOffset: 10, records: [rec(0, 'y'.repeat(MAX_FRAME))] }))
  assert.equal((await c.closed).code, 1009)
  await goodEdgeStillServed(20)
})

test('a batch claiming another edge\'s id is refused with TRIB_ERR_BRIDGE_EDGE_MISMATCH and stores nothing', async () => {
  const c = await open()
  await hello(c, 'other', 'tok-other')
  c.ws.send(encodeFrame({ type: FrameType.BATCH, edgeId: 'good', fromOffset: 1000, toOffset: 1010, records: [rec(1000, 'forged')] }))
  assert.equal((await c.closed).code, 4003)
  const err = c.frames.find((f) => f.type === FrameType.ERROR) as { code: string } | undefined
  assert.equal(err?.code, 'TRIB_ERR_BRIDGE_EDGE_MISMATCH')
  const res = await fetch(`http://127.0.0.1:${cloud.httpPort}/replay?edge=good&topic=devices/1/t&fromSeq=0&limit=100`)
  const body = await res.json() as { records: Array<{ payloadBase64: string }> }
  assert.ok(body.records.every((r) => Buffer.from(r.payloadBase64, 'base64').toString() !== 'forged'))
  await goodEdgeStillServed(30)
  const metrics = await (await fetch(`http://127.0.0.1:${cloud.httpPort}/metrics`)).text()
  assert.match(metrics, /tributary_cloud_bridge_edge_mismatch_total 1/)
  assert.match(metrics, /tributary_cloud_bridge_refused_auth_total 2/)
})
