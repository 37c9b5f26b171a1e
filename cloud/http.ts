// HTTP of a cloud node: GET /healthz (process up), /readyz (store open and listeners up),
// /metrics (Prometheus), /stats (JSON), /replay (a topic from an offset or a time, JSON).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Logger } from '../src/log/index.js'
import type { CloudStats } from './metrics.js'
import type { CloudStore } from './store/types.js'
import { listenHttp } from '../src/metrics/http-server.js'

// A replay request returns at most this many records; the response says where to continue.
const MAX_REPLAY_RECORDS = 10_000
const DEFAULT_REPLAY_RECORDS = 100

export interface CloudHttp { port: number, setReady: (ready: boolean) => void, close: () => Promise<void> }

function json (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

async function replay (store: CloudStore, q: URLSearchParams): Promise<[number, unknown]> {
  const edge = q.get('edge')
  const topic = q.get('topic')
  if (edge === null || topic === null) return [400, { error: 'replay needs edge and topic, and fromSeq or fromTime (ms since epoch or ISO 8601)' }]
  let from = 0
  const fromSeq = q.get('fromSeq')
  const fromTime = q.get('fromTime')
  if (fromSeq !== null) {
    from = Number(fromSeq)
    if (!Number.isSafeInteger(from) || from < 0) return [400, { error: 'fromSeq must be a non-negative integer' }]
  } else if (fromTime !== null) {
    const t = /^\d+$/.test(fromTime) ? Number(fromTime) : Date.parse(fromTime)
    if (!Number.isFinite(t)) return [400, { error: 'fromTime must be ms since epoch or an ISO 8601 date' }]
    from = await store.seqForTime(t)
  }
  const limit = Math.min(MAX_REPLAY_RECORDS, Math.max(1, Number(q.get('limit') ?? DEFAULT_REPLAY_RECORDS) || DEFAULT_REPLAY_RECORDS))
  const b = await store.readTopic(edge, topic, from, { maxRecords: limit })
  return [200, {
    edge,
    topic,
    nextSeq: b.nextSeq,
    end: b.status === 'end',
    records: b.records.map((r) => ({
      seq: r.seq, edgeOffset: r.edgeOffset, timestampMs: r.timestampMs, time: new Date(r.timestampMs).toISOString(), qos: r.qos, retain: r.retain, payloadBase64: r.payload.toString('base64')
    }))
  }]
}

export async function startCloudHttp (host: string, port: number, deps: { registry: Registry, store: CloudStore, stats: CloudStats, logger: Logger }): Promise<CloudHttp> {
  let ready = false
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (req.method !== 'GET') { res.writeHead(405).end(); return }
    switch (url.pathname) {
      case '/healthz': json(res, 200, { status: 'ok' }); return
      case '/readyz': json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' }); return
      case '/metrics': {
        const text = await deps.registry.metrics()
        res.writeHead(200, { 'content-type': deps.registry.contentType }).end(text)
        return
      }
      case '/stats': json(res, 200, { store: await deps.store.stats(), endSeq: await deps.store.endSeq(), node: deps.stats }); return
      case '/read': {
        // The cloud-wide sequence from a position (tooling and tests).
        const from = Number(url.searchParams.get('fromSeq') ?? 0)
        const limit = Math.min(MAX_REPLAY_RECORDS, Math.max(1, Number(url.searchParams.get('limit') ?? DEFAULT_REPLAY_RECORDS) || DEFAULT_REPLAY_RECORDS))
        if (!Number.isSafeInteger(from) || from < 0) { json(res, 400, { error: 'fromSeq must be a non-negative integer' }); return }
        const b = await deps.store.read(from, { maxRecords: limit })
        json(res, 200, { nextSeq: b.nextSeq, end: b.status === 'end', records: b.records.map((r) => ({ seq: r.seq, edge: r.edgeId, edgeOffset: r.edgeOffset, topic: r.topic, timestampMs: r.timestampMs, qos: r.qos, retain: r.retain, payloadBase64: r.payload.toString('base64') })) })
        return
      }
      case '/replay': {
        const [status, body] = await replay(deps.store, url.searchParams)
        json(res, status, body)
        return
      }
      default: res.writeHead(404).end()
    }
  }
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      deps.logger.warn({ err }, 'http request failed')
      if (!res.headersSent) json(res, 500, { error: err.message })
    })
  })
  const listening = await listenHttp(server, host, port)
  return { port: listening.port, setReady: (r) => { ready = r }, close: listening.close }
}
