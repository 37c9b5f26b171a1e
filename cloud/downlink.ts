// The cloud MQTT front end's "log": a cloud app's PUBLISH to `down/{edge}/{topic}` is stored in
// the edge's downlink queue before the broker acks it (PUBACK after durable, as at the edge);
// other publishes are not stored (cloud apps talking to each other) and acked at once.
// The broker requires durable callbacks in append order: one promise chain keeps that order.
import type { AppendInput, AppendResult, DurableCallback } from '../src/commitlog/types.js'
import type { DurableAppender } from '../src/mqtt/broker.js'
import type { Logger } from '../src/log/index.js'
import type { CloudStats } from './metrics.js'
import { isValidEdgeId, type CloudStore } from './store/types.js'

export interface DownlinkTarget { edgeId: string, topic: string }

export function parseDownTopic (prefix: string, topic: string): DownlinkTarget | undefined {
  if (!topic.startsWith(prefix)) return undefined
  const slash = topic.indexOf('/', prefix.length)
  if (slash === -1) return undefined
  const edgeId = topic.slice(prefix.length, slash)
  const rest = topic.slice(slash + 1)
  if (!isValidEdgeId(edgeId) || rest.length === 0) return undefined
  return { edgeId, topic: rest }
}

export interface DownlinkAppenderDeps {
  store: CloudStore
  prefix: string
  ttlMs: number
  now: () => number
  stats: CloudStats
  logger: Logger
  // Told after a downlink is stored, so the edge's session (if connected) sends it.
  onStored: (edgeId: string) => void
}

export function createDownlinkAppender (deps: DownlinkAppenderDeps): DurableAppender {
  let chain: Promise<void> = Promise.resolve()
  let n = 0
  return {
    append (input: AppendInput, onDurable: DurableCallback): AppendResult {
      const target = parseDownTopic(deps.prefix, input.topic)
      const ts = deps.now()
      if (target === undefined) {
        chain = chain.then(() => { onDurable(null) })
      } else {
        const expiresAtMs = deps.ttlMs === 0 ? 0 : ts + deps.ttlMs
        const job = deps.store.enqueueDownlink(target.edgeId, { topic: target.topic, payload: Buffer.from(input.payload), qos: input.qos, retain: input.retain, expiresAtMs })
        chain = chain.then(async () => {
          try {
            await job
          } catch (err) {
            deps.logger.error({ err, edgeId: target.edgeId }, 'downlink not stored: publish refused')
            onDurable(err as Error)
            return
          }
          deps.stats.downlinksEnqueued++
          onDurable(null)
          deps.onStored(target.edgeId)
        })
      }
      const i = n++
      return { offset: i, nextOffset: i + 1, timestampMs: ts, topicOffset: 0 }
    }
  }
}
