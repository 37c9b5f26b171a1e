// LOG_BATCH (the edge's log bytes) at a real cloud process: a frame claiming another edge's id, a
// corrupted one and one that is too large are refused on that connection only (ERROR + close
// 4003 / 4002 / 1009); a well-formed one is stored and acked, and the node keeps serving.
import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { encodeRecord, frameBytes } from '../../src/commitlog/format.js'
import { FrameType, encodeFrame, encodeLogBatch } from '../../src/protocol/bridge-frames.js'
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.js'
import { openBridge, type BridgeConn } from '../helpers/bridge-conn.js'
import { tempDir, waitFor } from '../helpers/net.js'

let cloud: CloudProcess
let dir: { path: string, remove: () => Promise<void> }
const MAX_FRAME = 64 * 1024

before(async () => {
  dir = await tempDir('bridge-logbatch-bad')
  cloud = await startCloudProcess(['--data-dir', dir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'good=tok-good', '--edge-token', 'other=tok-other', '--bridge-max-frame-bytes', String(MAX_FRAME), '--log-level', 'warn'])
})
after(async () => {
  await cloud?.kill()
  await dir?.remove()
})

// `n` records framed as in an edge log from `from`, as one run; returns the frame and its end.
function logBatch (edgeId: string, from: number, n: number, payloadBytes = 20): { frame: Buffer, to: number } {
  const frames: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const t = Buffer.from('devices/1/t')
    const c = Buffer.from('dev')
    const p = Buffer.alloc(payloadBytes, i)
    const f = Buffer.alloc(frameBytes(t.length, c.length, p.length))
    encodeRecord(f, 0, Date.now(), 1, false, t, c, p)
    frames.push(f)
  }
  const run = Buffer.concat(frames)
  return { frame: encodeLogBatch(edgeId, from, from + run.length, [{ offset: from, frames: run }]), to: from + run.length }
}

async function connect (edgeId: string, token: string): Promise<BridgeConn> {
  const c = await openBridge(cloud.bridgeUrl)
  c.ws.send(encodeFrame({ type: FrameType.HELLO, edgeId, token, checkpoint: 0, lastDownlinkSeq: 0 }))
  await waitFor('WELCOME', () => c.frames.length > 0)
  assert.equal(c.frames[0].type, FrameType.WELCOME)
  return c
}

function errorCode (c: BridgeConn): string | undefined {
  const e = c.frames.find((f) => f.type === FrameType.ERROR) as { code: string } | undefined
  return e?.code
}

test('LOG_BATCH refusals on one connection; a good LOG_BATCH is stored and acked', async () => {
  // Another edge's id on this edge's connection.
  const a = await connect('good', 'tok-good')
  a.ws.send(logBatch('other', 0, 3).frame)
  assert.equal((await a.closed).code, 4003)
  assert.equal(errorCode(a), 'TRIB_ERR_BRIDGE_EDGE_MISMATCH')

  // A record whose lengths do not add up.
  const b = await connect('good', 'tok-good')
  const broken = logBatch('good', 0, 3).frame
  broken.writeUInt32LE(9999, 4 + 2 + 4 + 16 + 4 + 4 + 12 + 4) // first record's totalLength
  b.ws.send(broken)
  assert.equal((await b.closed).code, 4002)
  assert.equal(errorCode(b), 'TRIB_ERR_BRIDGE_FRAME')

  // Larger than the node's frame limit: ws closes with 1009.
  const c = await connect('good', 'tok-good')
  c.ws.send(logBatch('good', 0, 200, 400).frame)
  assert.equal((await c.closed).code, 1009)

  // The node still serves: a well-formed LOG_BATCH is acked at its end.
  const d = await connect('good', 'tok-good')
  const ok = logBatch('good', 0, 5)
  d.ws.send(ok.frame)
  await waitFor('ACK', () => d.frames.some((f) => f.type === FrameType.ACK))
  assert.deepEqual(d.frames.find((f) => f.type === FrameType.ACK), { type: FrameType.ACK, committedOffset: ok.to })
  d.ws.close()
})
