// One edge's bridge connection at the cloud. Lifecycle:
//   hello (wait for HELLO, auth)  ->  ready (ingest batches, send downlinks)  ->  closed
// Everything wrong is answered on this connection only: REFUSE or ERROR, then close.
import { timingSafeEqual } from 'node:crypto'
import type { WebSocket } from 'ws'
import type { Logger } from '../src/log/index.js'
import { isTributaryError, type ErrorCode } from '../src/errors/index.js'
import {
  FrameType, LazyBatchFrame, LazyLogBatchFrame, RefuseCode, decodeFrame, encodeFrame, scanBatchFrame, type BatchFrame, type BridgeFrame, type FrameLimits,
  type HelloFrame, type RefuseCodeValue
} from '../src/protocol/bridge-frames.js'
import type { CloudStats } from './metrics.js'
import { isValidEdgeId, type CloudStore, type Lease } from './store/types.js'

export const CloseCode = {
  GOING_AWAY: 1001,
  AUTH: 4001,
  FRAME: 4002,
  EDGE_MISMATCH: 4003,
  REPLACED: 4004,
  IDLE: 4005,
  STORE: 4006
} as const

export interface SessionConfig {
  heartbeatMs: number
  idleTimeoutMs: number
  helloTimeoutMs: number
  leaseTtlMs: number
  maxFrameBytes: number
  downlinkWindow: number
}

export interface SessionDeps {
  store: CloudStore
  tokens: ReadonlyMap<string, string>
  nodeId: string
  config: SessionConfig
  limits: FrameLimits
  stats: CloudStats
  logger: Logger
  // Sessions of this node by edge id: a new connection of an edge replaces the old one.
  sessions: Map<string, BridgeSession>
  now: () => number
}

// What may be queued at the cloud for one edge (frames received, append or ACK pending) before we
// stop reading its socket (TCP backpressure), whatever the edge's window says. Bounded in bytes:
// a live edge sends many small batches (~1,000/s at 5,000 msgs/s), and a count of 64 filled within
// ~60 ms of a cloud fsync stall, pausing the link and putting the stall on the device -> cloud
// path (an injected 300 ms stall: p99 222 ms, 33 ms with room for more batches). The edge's own
// window (32 x 1 MiB by default) stays below the byte cap; the batch cap bounds the per-frame
// bookkeeping of tiny frames.
export const MAX_QUEUED_BYTES = 64 * 1024 * 1024
export const MAX_QUEUED_BATCHES = 4096

// A batch's size as received: the frame for scanned (lazy) frames, else its payloads plus a
// per-record allowance for the header fields.
function batchFrameBytes (batch: BatchFrame): number {
  if (batch instanceof LazyBatchFrame || batch instanceof LazyLogBatchFrame) return batch.raw.buf.length
  let n = 0
  for (let i = 0; i < batch.records.length; i++) n += batch.records[i].payload.length + 64
  return n
}

function tokenMatches (expected: string, given: string): boolean {
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

export class BridgeSession {
  edgeId: string | undefined
  private state: 'hello' | 'ready' | 'closed' = 'hello'
  private lease: Lease | undefined
  private lastHeard: number
  private readonly timer: NodeJS.Timeout
  private ingestChain: Promise<void> = Promise.resolve()
  private queuedBatches = 0
  private queuedBytes = 0
  private paused = false
  private log: Logger
  // Downlinks: highest seq sent on this connection, seqs sent and not yet acked.
  private lastSentDownlink = 0
  private readonly unackedDownlinks: number[] = []
  private pumping = false
  private pumpAgain = false

  constructor (private readonly ws: WebSocket, private readonly deps: SessionDeps, remote: string) {
    this.log = deps.logger.child({ remote })
    this.lastHeard = deps.now()
    const started = this.lastHeard
    const tick = Math.max(50, Math.min(deps.config.heartbeatMs, deps.config.leaseTtlMs / 3) >> 1)
    this.timer = setInterval(() => { this.onTick(started) }, tick)
    ws.on('message', (data, isBinary) => { this.onMessage(data as Buffer, isBinary) })
    ws.on('close', () => { this.onClosed() })
    ws.on('error', (err) => {
      // ws reports an oversized message (1009) or a protocol error here, then closes.
      this.deps.stats.frameErrors++
      this.log.warn({ code: 'TRIB_ERR_BRIDGE_FRAME', err: err.message }, 'bridge connection error')
    })
  }

  private send (frame: BridgeFrame): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(encodeFrame(frame))
  }

  private refuse (code: RefuseCodeValue, reason: string, errCode: ErrorCode, closeCode: number): void {
    this.log.warn({ code: errCode, edgeId: this.edgeId, reason }, 'bridge connection refused')
    this.send({ type: FrameType.REFUSE, code, reason })
    this.close(closeCode, reason)
  }

  private protocolError (code: ErrorCode, message: string, closeCode: number): void {
    this.log.warn({ code, edgeId: this.edgeId, err: message }, 'bridge connection closed on a protocol error')
    this.send({ type: FrameType.ERROR, code, message: message.slice(0, 900) })
    this.close(closeCode, code)
  }

  close (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearInterval(this.timer)
    this.ws.close(code, reason.slice(0, 120))
    // A peer that never answers the close handshake is cut after a grace period.
    setTimeout(() => { this.ws.terminate() }, 2000).unref()
    this.release()
  }

  private onClosed (): void {
    if (this.state !== 'closed') {
      this.state = 'closed'
      clearInterval(this.timer)
      this.release()
    }
  }

  private release (): void {
    if (this.edgeId !== undefined && this.deps.sessions.get(this.edgeId) === this) {
      this.deps.sessions.delete(this.edgeId)
      this.deps.stats.edgesConnected--
      if (this.lease !== undefined) this.deps.store.releaseLease(this.lease).catch(() => {})
      this.log.info('edge disconnected')
    }
  }

  private onTick (started: number): void {
    const now = this.deps.now()
    if (this.state === 'hello' && now - started > this.deps.config.helloTimeoutMs) {
      this.protocolError('TRIB_ERR_BRIDGE_AUTH', 'no HELLO in time', CloseCode.AUTH)
      return
    }
    if (now - this.lastHeard > this.deps.config.idleTimeoutMs) {
      this.log.warn({ edgeId: this.edgeId, silentMs: now - this.lastHeard }, 'edge silent past the idle timeout: disconnecting')
      this.close(CloseCode.IDLE, 'idle timeout')
      return
    }
    if (this.lease !== undefined && this.lease.expiresAtMs - now < this.deps.config.leaseTtlMs * 2 / 3) {
      const lease = this.lease
      this.deps.store.renewLease(lease, this.deps.config.leaseTtlMs, now).then((out) => {
        if (out.status === 'ok') { if (this.lease === lease) this.lease = out.lease; return }
        this.deps.stats.fenced++
        this.protocolError('TRIB_ERR_STORE_FENCED', `edge ${this.edgeId ?? ''} is now held by ${out.holder}`, CloseCode.REPLACED)
      }, (err: Error) => { this.log.warn({ err }, 'lease renewal failed') })
    }
  }

  private onMessage (data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return
    this.lastHeard = this.deps.now()
    if (!isBinary) { this.deps.stats.frameErrors++; this.protocolError('TRIB_ERR_BRIDGE_FRAME', 'text message on the bridge: frames are binary', CloseCode.FRAME); return }
    // BATCH and LOG_BATCH frames (the hot path) are checked without an object per record: the
    // embedded store keeps their record bytes as they are (scanBatchFrame; decodeFrame hands a
    // LOG_BATCH to scanLogBatchFrame).
    const res = data.length > 3 && data[3] === FrameType.BATCH ? scanBatchFrame(data, this.deps.limits) : decodeFrame(data, this.deps.limits)
    if (!res.ok) { this.deps.stats.frameErrors++; this.protocolError('TRIB_ERR_BRIDGE_FRAME', res.error, CloseCode.FRAME); return }
    const frame = res.frame
    if (this.state === 'hello') {
      if (frame.type !== FrameType.HELLO) { this.deps.stats.frameErrors++; this.protocolError('TRIB_ERR_BRIDGE_FRAME', 'expected HELLO first', CloseCode.FRAME); return }
      this.onHello(frame)
      return
    }
    switch (frame.type) {
      case FrameType.BATCH: this.onBatch(frame); return
      case FrameType.PING: this.send({ type: FrameType.PONG, nonce: frame.nonce }); return
      case FrameType.PONG: return
      case FrameType.DOWNLINK_ACK: this.onDownlinkAck(frame.seq); return
      default:
        this.deps.stats.frameErrors++
        this.protocolError('TRIB_ERR_BRIDGE_FRAME', `unexpected frame type ${frame.type} from an edge`, CloseCode.FRAME)
    }
  }

  private onHello (hello: HelloFrame): void {
    const { tokens, stats } = this.deps
    this.state = 'ready' // no second HELLO is processed while auth runs
    const expected = tokens.get(hello.edgeId)
    if (!isValidEdgeId(hello.edgeId) || expected === undefined || !tokenMatches(expected, hello.token)) {
      stats.refusedAuth++
      this.edgeId = isValidEdgeId(hello.edgeId) ? hello.edgeId : undefined
      this.refuse(RefuseCode.AUTH, 'unknown edge or wrong token', 'TRIB_ERR_BRIDGE_AUTH', CloseCode.AUTH)
      return
    }
    const edgeId = hello.edgeId
    this.log = this.log.child({ edgeId })
    this.deps.store.acquireLease(edgeId, this.deps.nodeId, this.deps.config.leaseTtlMs, this.deps.now()).then(async (out) => {
      if (this.state === 'closed') { if (out.status === 'ok') await this.deps.store.releaseLease(out.lease); return }
      if (out.status !== 'ok') {
        stats.fenced++
        this.refuse(RefuseCode.FENCED, `edge held by ${out.holder}`, 'TRIB_ERR_STORE_FENCED', CloseCode.REPLACED)
        return
      }
      this.lease = out.lease
      const old = this.deps.sessions.get(edgeId)
      if (old !== undefined) {
        // The edge reconnected (its old link is probably dead): the newest connection wins.
        this.deps.sessions.delete(edgeId)
        this.deps.stats.edgesConnected--
        old.close(CloseCode.REPLACED, 'replaced by a newer connection of this edge')
      }
      this.edgeId = edgeId
      this.deps.sessions.set(edgeId, this)
      stats.edgesConnected++
      const committed = await this.deps.store.committedOffset(edgeId)
      if (hello.lastDownlinkSeq > 0) await this.deps.store.ackDownlinks(edgeId, hello.lastDownlinkSeq)
      this.lastSentDownlink = hello.lastDownlinkSeq
      if (this.state !== 'ready') return
      this.send({ type: FrameType.WELCOME, committedOffset: committed, heartbeatMs: this.deps.config.heartbeatMs, maxFrameBytes: this.deps.config.maxFrameBytes })
      this.log.info({ committedOffset: committed, edgeCheckpoint: hello.checkpoint }, 'edge connected')
      this.pumpDownlinks()
    }).catch((err: Error) => { this.storeFailed(err) })
  }

  private storeFailed (err: Error): void {
    this.log.error({ err, code: isTributaryError(err) ? err.code : 'TRIB_ERR_STORE_IO' }, 'store failed serving an edge')
    this.protocolError('TRIB_ERR_STORE_IO', 'cloud store unavailable', CloseCode.STORE)
  }

  private onBatch (batch: BatchFrame): void {
    if (this.edgeId === undefined || this.lease === undefined) { this.deps.stats.frameErrors++; this.protocolError('TRIB_ERR_BRIDGE_FRAME', 'BATCH before WELCOME', CloseCode.FRAME); return }
    if (batch.edgeId !== this.edgeId) {
      this.deps.stats.edgeMismatch++
      this.protocolError('TRIB_ERR_BRIDGE_EDGE_MISMATCH', `batch claims edge "${batch.edgeId.slice(0, 64)}" on the connection of "${this.edgeId}"`, CloseCode.EDGE_MISMATCH)
      return
    }
    const frameBytes = batchFrameBytes(batch)
    this.queuedBatches++
    this.queuedBytes += frameBytes
    if ((this.queuedBatches >= MAX_QUEUED_BATCHES || this.queuedBytes >= MAX_QUEUED_BYTES) && !this.paused) { this.paused = true; this.ws.pause() }
    const lease = this.lease
    const edgeId = this.edgeId
    // Pipelined: the append is issued now, in frame order (the store applies appendBatch calls of
    // one edge in call order), so batches share fsyncs instead of each waiting for the previous
    // one's; only the ACKs are chained, to leave in order.
    const appending = this.deps.store.appendBatch(edgeId, batch, lease)
    appending.catch(() => {}) // handled in the chain below
    this.ingestChain = this.ingestChain.then(async () => {
      const out = await appending
      if (this.state === 'closed') return
      if (out.status === 'fenced') {
        this.deps.stats.fenced++
        this.protocolError('TRIB_ERR_STORE_FENCED', `edge ${edgeId} is now held by ${out.holder}`, CloseCode.REPLACED)
        return
      }
      const s = this.deps.stats
      s.batches++
      s.recordsAppended += out.appended
      if (batch instanceof LazyBatchFrame || batch instanceof LazyLogBatchFrame) {
        s.recordsDuplicate += batch.raw.count - out.appended
        s.bytesIn += batch.raw.payloadBytes
      } else {
        s.recordsDuplicate += batch.records.length - out.appended
        for (let i = 0; i < batch.records.length; i++) s.bytesIn += batch.records[i].payload.length
      }
      this.send({ type: FrameType.ACK, committedOffset: out.committedOffset })
    }).catch((err: Error) => { this.storeFailed(err) }).finally(() => {
      this.queuedBatches--
      this.queuedBytes -= frameBytes
      if (this.paused && this.queuedBatches < MAX_QUEUED_BATCHES / 2 && this.queuedBytes < MAX_QUEUED_BYTES / 2) { this.paused = false; this.ws.resume() }
    })
  }

  // Called by the node when a downlink for this edge was stored.
  pumpDownlinks (): void {
    if (this.state !== 'ready' || this.edgeId === undefined || this.lease === undefined) return
    if (this.pumping) { this.pumpAgain = true; return }
    this.pumping = true
    const edgeId = this.edgeId
    const room = this.deps.config.downlinkWindow - this.unackedDownlinks.length
    const run = room <= 0
      ? Promise.resolve()
      : this.deps.store.pendingDownlinks(edgeId, this.lastSentDownlink, this.deps.now(), room).then((p) => {
        this.deps.stats.downlinksExpired += p.expired
        if (p.expired > 0) this.log.warn({ expired: p.expired }, 'downlinks expired before delivery: dropped')
        for (const d of p.downlinks) {
          if (this.state !== 'ready') return
          this.send({ type: FrameType.DOWNLINK, seq: d.seq, expiresAtMs: d.expiresAtMs, qos: d.qos, retain: d.retain, topic: d.topic, payload: d.payload })
          this.lastSentDownlink = d.seq
          this.unackedDownlinks.push(d.seq)
          this.deps.stats.downlinksSent++
        }
      })
    run.catch((err: Error) => { this.log.warn({ err }, 'downlink pump failed') }).finally(() => {
      this.pumping = false
      if (this.pumpAgain) { this.pumpAgain = false; this.pumpDownlinks() }
    })
  }

  private onDownlinkAck (seq: number): void {
    if (this.edgeId === undefined) return
    let n = 0
    while (this.unackedDownlinks.length > 0 && this.unackedDownlinks[0] <= seq) { this.unackedDownlinks.shift(); n++ }
    this.deps.stats.downlinksAcked += n
    this.deps.store.ackDownlinks(this.edgeId, seq).catch((err: Error) => { this.log.warn({ err }, 'downlink ack failed') })
    if (n > 0) this.pumpDownlinks()
  }
}
