// cloud/bridge-session.ts: while the store is slow (a cloud fsync stall, simulated by holding every
// append), the node keeps reading an edge's many small batches (a live edge sends ~1,000 a second)
// instead of pausing the link after a few dozen; it stops reading only when the queued bytes
// reach MAX_QUEUED_BYTES. Everything is acked in order once the store is back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startCloudNode, type CloudNode } from '../../cloud/node.js'
import { MAX_QUEUED_BYTES } from '../../cloud/bridge-session.js'
import { MemoryCloudStore } from '../../cloud/store/memory.js'
import type { CloudStore } from '../../cloud/store/types.js'
import { loadConfig } from '../../src/config/index.js'
import { cloudSchema } from '../../src/config/cloud.js'
import { silentLogger } from '../../src/log/index.js'
import { FrameType, encodeFrame } from '../../src/protocol/bridge-frames.js'
import { openBridge, type BridgeConn } from '../helpers/bridge-conn.js'
import { tempDir, waitFor } from '../helpers/net.js'

interface HeldStore { store: CloudStore, calls: () => number, release: () => void }

// A memory store whose appends wait until release() (they are issued, not completed).
function heldStore (): HeldStore {
  const store = new MemoryCloudStore()
  const real = store.appendBatch.bind(store)
  let calls = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  store.appendBatch = async (edgeId, batch, lease) => { calls++; await gate; return await real(edgeId, batch, lease) }
  return { store, calls: () => calls, release }
}

async function withNode (fn: (node: CloudNode, held: HeldStore, conn: BridgeConn) => Promise<void>): Promise<void> {
  const dir = await tempDir('cloud-ingest-queue')
  const held = heldStore()
  const config = loadConfig(cloudSchema, {
    argv: ['--data-dir', dir.path, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--bridge-host', '127.0.0.1', '--bridge-port', '0', '--http-port', '-1', '--edge-token', 'e1=t1']
  })
  const node = await startCloudNode({ config, logger: silentLogger(), store: held.store })
  const conn = await openBridge(node.bridgeUrl)
  try {
    conn.ws.send(encodeFrame({ type: FrameType.HELLO, edgeId: 'e1', token: 't1', checkpoint: 0, lastDownlinkSeq: 0 }))
    await waitFor('WELCOME', () => conn.frames.some((f) => f.type === FrameType.WELCOME))
    await fn(node, held, conn)
  } finally {
    held.release()
    conn.ws.close()
    await node.close()
    await held.store.close()
    await dir.remove()
  }
}

function batch (offset: number, payloadBytes: number): Buffer {
  return encodeFrame({
    type: FrameType.BATCH,
    edgeId: 'e1',
    fromOffset: offset,
    toOffset: offset + 10,
    records: [{ offset, nextOffset: offset + 10, timestampMs: Date.now(), qos: 1, retain: false, topic: 'devices/1/t', payload: Buffer.alloc(payloadBytes, 1) }]
  })
}

const lastAck = (conn: BridgeConn): number => {
  let n = -1
  for (const f of conn.frames) if (f.type === FrameType.ACK) n = f.committedOffset
  return n
}

test('500 small batches are all read and appended while the store is held (no pause after 64)', async () => {
  await withNode(async (_node, held, conn) => {
    const N = 500
    for (let i = 0; i < N; i++) conn.ws.send(batch(i * 10, 100))
    await waitFor(`${N} appends issued while the store holds them`, () => held.calls() === N)
    assert.equal(lastAck(conn), -1, 'nothing acked while the store holds the appends')
    held.release()
    await waitFor('the last batch acked', () => lastAck(conn) === N * 10)
  })
})

test('the node stops reading an edge once MAX_QUEUED_BYTES are queued, and resumes after', async () => {
  await withNode(async (_node, held, conn) => {
    const FRAME_PAYLOAD = 12 * 1024 * 1024
    const frames = Math.floor(MAX_QUEUED_BYTES / FRAME_PAYLOAD) + 2 // 7 x 12 MiB = 84 MiB > 64 MiB
    for (let i = 0; i < frames; i++) conn.ws.send(batch(i * 10, FRAME_PAYLOAD))
    const pausedAfter = Math.ceil(MAX_QUEUED_BYTES / FRAME_PAYLOAD) // the frame that reaches the cap is counted
    await waitFor(`${pausedAfter} appends issued`, () => held.calls() >= pausedAfter, 20_000)
    // The cap holds: the rest stays unread while the store is held. (If it did not hold, the
    // remaining frames, already sent, would be appended within milliseconds.)
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.equal(held.calls(), pausedAfter)
    held.release()
    await waitFor('every batch acked after the store came back', () => lastAck(conn) === frames * 10, 20_000)
    assert.equal(held.calls(), frames)
  })
})
