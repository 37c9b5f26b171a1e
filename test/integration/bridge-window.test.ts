// The bridge's window of unacked batches counts full-size batches (edge/bridge/client.ts): small
// live batches may be many more than `windowBatches` (up to 32 per slot), so a cloud that is slow
// to ack (its fsync stalls) does not stop the flow at once; full-size batches stay bounded by
// `windowBatches` x batchMaxBytes. A fake cloud (a real WebSocket server) welcomes the edge and
// never acks.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { FrameType, decodeFrame, encodeFrame } from '../../src/protocol/bridge-frames.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { bridgeClient, openEdgeLog } from './bridge-client-helpers.js'

async function silentCloud (): Promise<{ url: string, frames: number[], close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const frames: number[] = [] // bytes of each LOG_BATCH received
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      const res = decodeFrame(data)
      if (!res.ok) return
      if (res.frame.type === FrameType.HELLO) ws.send(encodeFrame({ type: FrameType.WELCOME, committedOffset: 0, heartbeatMs: 60_000, maxFrameBytes: 16 * 1024 * 1024 }))
      else if (res.frame.type !== FrameType.PING && res.frame.type !== FrameType.PONG) frames.push(data.length) // batches: never acked
    })
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/bridge`,
    frames,
    close: async () => { for (const c of wss.clients) c.terminate(); await new Promise<void>((resolve) => wss.close(() => resolve())) }
  }
}

const record = (i: number, bytes: number): { topic: string, payload: Buffer, qos: 1, retain: false, clientId: string } =>
  ({ topic: 'devices/1/t', payload: Buffer.alloc(bytes, i & 0xff), qos: 1, retain: false, clientId: 'dev' })

test('unacked small batches may exceed windowBatches (32 per slot); full-size ones stop at windowBatches', async () => {
  const dir = await tempDir('bwin')
  const cloud = await silentCloud()
  const log = await openEdgeLog(dir.path, { replicateAheadBytes: 1024 * 1024 })
  const bridge = bridgeClient(log, cloud.url, { windowBatches: 2, batchMaxBytes: 65_536 })
  try {
    await bridge.start()
    // 100 small records, one per loop turn: one batch each.
    for (let i = 0; i < 100; i++) { log.append(record(i, 50)); await new Promise((resolve) => setTimeout(resolve, 2)) }
    await waitFor('64 small batches in flight', () => cloud.frames.length >= 64, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(cloud.frames.length, 64, '2 slots x 32 small batches, then the window is full')
    assert.ok(cloud.frames.every((b) => b < 1024), 'one small record per batch')
  } finally {
    await bridge.close(); await log.close(); await cloud.close(); await dir.remove()
  }
})

test('full-size batches: at most windowBatches x batchMaxBytes of frames unacked', async () => {
  const dir = await tempDir('bwin2')
  const cloud = await silentCloud()
  const log = await openEdgeLog(dir.path, { replicateAheadBytes: 1024 * 1024 })
  // A backlog before the bridge starts: batches fill up to batchMaxBytes.
  for (let i = 0; i < 200; i++) log.append(record(i, 1000))
  await log.flush()
  const bridge = bridgeClient(log, cloud.url, { windowBatches: 2, batchMaxBytes: 4096 })
  try {
    await bridge.start()
    await waitFor('the window filled', () => cloud.frames.length >= 2, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const bytes = cloud.frames.reduce((a, b) => a + b, 0)
    assert.ok(cloud.frames.length <= 3 && bytes <= 2 * 4096 + 4096 + 1024, `${cloud.frames.length} frames, ${bytes} bytes unacked`)
  } finally {
    await bridge.close(); await log.close(); await cloud.close(); await dir.remove()
  }
})
