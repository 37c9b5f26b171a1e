// A raw bridge connection for tests that play the edge side frame by frame: every decoded frame
// the cloud node sends is collected, and `closed` resolves with the close code and reason.
import { WebSocket } from 'ws'
import { decodeFrame, type BridgeFrame } from '../../src/protocol/bridge-frames.js'

export interface BridgeConn { ws: WebSocket, frames: BridgeFrame[], closed: Promise<{ code: number, reason: string }> }

export async function openBridge (url: string): Promise<BridgeConn> {
  const ws = new WebSocket(url)
  const frames: BridgeFrame[] = []
  ws.on('message', (data) => { const r = decodeFrame(data as Buffer); if (r.ok) frames.push(r.frame) })
  ws.on('error', () => {})
  const closed = new Promise<{ code: number, reason: string }>((resolve) => ws.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) }))
  await new Promise<void>((resolve, reject) => { ws.once('open', () => { resolve() }); ws.once('error', reject) })
  return { ws, frames, closed }
}
