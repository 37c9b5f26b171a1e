// Load mode: many raw connections publish 24+ byte binary messages as fast as flow control
// allows (--max-rate) or at a fixed total rate (--load-rate, for latency), subscribers count
// deliveries and latency. The generator reports its own CPU use so a reader can tell whether
// the broker or the generator was the limit.
import { randomInt } from 'node:crypto'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import { newLatencyHistogram } from '../checker.js'
import { parseBrokerUrl } from '../mqtt/transport.js'
import { nowMs } from '../payload.js'
import { summarize, type LatencySummary } from '../report.js'
import { LoadPublisher } from './publisher.js'
import { LoadSubscriber } from './subscriber.js'

export interface LoadOptions {
  broker: string
  qos: 0 | 1
  // 0 = as fast as flow control allows.
  ratePerSec: number
  connections: number
  subscribers: number
  window: number
  payloadBytes: number
  durationMs: number
  // Sent at the asked rate before the measured `durationMs`, and left out of every figure.
  warmupMs?: number
  drainTimeoutMs: number
  idPrefix: string
  signal?: AbortSignal
}

export interface LoadReport {
  mode: 'max-rate' | 'paced'
  broker: string
  qos: 0 | 1
  connections: number
  subscribers: number
  payloadBytes: number
  targetRatePerSec: number
  warmupSeconds: number
  // The measured window (after the warm-up); rates are over it, counts over the whole run.
  sendSeconds: number
  published: number
  publishedPerSec: number
  acked: number
  // QoS 1 acks received inside the measured window, per second (0 for QoS 0).
  ackedPerSec: number
  deliveries: number
  deliveriesPerSec: number
  // published x subscribers - deliveries; QoS 0 may legitimately drop under overload.
  undelivered: number
  gaps: number
  outOfOrder: number
  latencyMs: LatencySummary
  // Paced mode: ticks that could not send because the QoS 1 window was full.
  windowFullTicks: number
  // CPU of this process while sending, as a fraction of one core (1 = one core saturated).
  generatorCpuCores: number
  maxRssBytes: number
}

async function sleep (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

export async function runLoad (opts: LoadOptions, log: Logger): Promise<LoadReport> {
  const target = parseBrokerUrl(opts.broker, 'broker')
  const runId = randomInt(1, 2 ** 31)
  const latency = newLatencyHistogram()
  const subs: LoadSubscriber[] = []
  const pubs: LoadPublisher[] = []
  const paced = opts.ratePerSec > 0
  // Paced mode: timer ticks that found the in-flight window full (the broker, not the
  // generator, held the rate back); 0 means the asked rate was offered throughout.
  let windowFull = 0
  let pacer: NodeJS.Timeout | null = null
  let maxRss = process.memoryUsage.rss()
  const warmupMs = opts.warmupMs ?? 0
  try {
    try {
      for (let i = 0; i < opts.subscribers; i++) {
        const s = new LoadSubscriber(runId, opts.connections, latency)
        subs.push(s)
        await s.open(target, `${opts.idPrefix}-lsub-${runId}-${i}`, { filter: `load/${runId}/#`, qos: opts.qos })
      }
      for (let i = 0; i < opts.connections; i++) {
        const p = new LoadPublisher(i, runId, Buffer.from(`load/${runId}/${i}`), Math.max(opts.payloadBytes, 24), opts.qos, opts.window, paced)
        pubs.push(p)
        await p.open(target, `${opts.idPrefix}-lpub-${runId}-${i}`)
      }
    } catch (err) {
      throw tributaryError('TRIB_ERR_SIM_CONNECT', `load mode cannot reach ${target.url}: ${(err as Error).message}`, { url: target.url }, err)
    }
    log.info({ connections: pubs.length, subscribers: subs.length }, 'load: connected')
    let cpu0 = process.cpuUsage()
    const tStart = performance.now()
    // The measured window starts after the warm-up; counters are snapshotted there.
    let t0 = tStart
    let published0 = 0; let acked0 = 0; let deliveries0 = 0; let measureFromMs = 0
    // Nothing sent during the warm-up is measured (its deliveries still count in the accounting).
    if (warmupMs > 0) for (const s of subs) s.measureFrom = Infinity
    for (const p of pubs) p.start()
    if (paced) {
      // Timer-driven pacing: each tick sends what is due by now, round robin over connections.
      let sent = 0
      let next = 0
      pacer = setInterval(() => {
        const due = Math.floor((performance.now() - tStart) * opts.ratePerSec / 1000) - sent
        for (let i = 0; i < due; i++) {
          const p = pubs[next]
          next = next + 1 === pubs.length ? 0 : next + 1
          if (p.sendOne()) sent++
          else { windowFull++; break }
        }
      }, 1)
    }
    if (warmupMs > 0) {
      const warmEnd = tStart + warmupMs
      while (performance.now() < warmEnd && opts.signal?.aborted !== true) await sleep(Math.min(200, Math.max(1, warmEnd - performance.now())))
      t0 = performance.now()
      measureFromMs = nowMs()
      for (const s of subs) s.measureFrom = measureFromMs
      published0 = pubs.reduce((n, p) => n + p.published, 0)
      acked0 = pubs.reduce((n, p) => n + p.acked, 0)
      deliveries0 = subs.reduce((n, s) => n + s.deliveries, 0)
      cpu0 = process.cpuUsage()
    }
    const deadline = t0 + opts.durationMs
    while (performance.now() < deadline && opts.signal?.aborted !== true) {
      await sleep(Math.min(200, Math.max(1, deadline - performance.now())))
      maxRss = Math.max(maxRss, process.memoryUsage.rss())
    }
    if (pacer !== null) clearInterval(pacer)
    for (const p of pubs) p.running = false
    const sendSeconds = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    const published = pubs.reduce((n, p) => n + p.published, 0)
    const ackedInWindow = pubs.reduce((n, p) => n + p.acked, 0) - acked0
    // Drain: until every subscriber has everything (QoS 1: and every ack is in), or nothing
    // arrives for 500 ms (QoS 0 drops), or the deadline.
    const drainDeadline = performance.now() + opts.drainTimeoutMs
    let last = -1
    let stableSince = performance.now()
    while (performance.now() < drainDeadline) {
      const got = subs.reduce((n, s) => n + s.deliveries, 0)
      const inflight = pubs.reduce((n, p) => n + p.inflight, 0)
      if (got >= published * subs.length && inflight === 0) break
      if (got !== last) { last = got; stableSince = performance.now() } else if (performance.now() - stableSince > 500 && inflight === 0) break
      await sleep(20)
    }
    const deliveries = subs.reduce((n, s) => n + s.deliveries, 0)
    let first = Infinity; let lastAt = 0
    for (const s of subs) { if (s.firstAt > 0) first = Math.min(first, s.firstAt); lastAt = Math.max(lastAt, s.lastAt) }
    // Deliveries/s from the first delivery (or the end of the warm-up) to the last one: a
    // broker that queues delivers after the sending stopped, and that time counts.
    if (warmupMs > 0) first = Math.max(first, measureFromMs)
    const deliverySeconds = lastAt > first ? (lastAt - first) / 1000 : sendSeconds
    return {
      mode: paced ? 'paced' : 'max-rate',
      broker: target.url,
      qos: opts.qos,
      connections: opts.connections,
      subscribers: opts.subscribers,
      payloadBytes: Math.max(opts.payloadBytes, 24),
      targetRatePerSec: opts.ratePerSec,
      warmupSeconds: warmupMs / 1000,
      sendSeconds,
      published,
      publishedPerSec: Math.round((published - published0) / sendSeconds),
      acked: pubs.reduce((n, p) => n + p.acked, 0),
      ackedPerSec: Math.round(ackedInWindow / sendSeconds),
      deliveries,
      deliveriesPerSec: Math.round((deliveries - deliveries0) / deliverySeconds),
      undelivered: Math.max(0, published * subs.length - deliveries),
      gaps: subs.reduce((n, s) => n + s.gaps, 0),
      outOfOrder: subs.reduce((n, s) => n + s.outOfOrder, 0),
      latencyMs: summarize(latency),
      windowFullTicks: windowFull,
      generatorCpuCores: Math.round((cpu.user + cpu.system) / 1000 / (sendSeconds * 1000) * 100) / 100,
      maxRssBytes: maxRss
    }
  } finally {
    if (pacer !== null) clearInterval(pacer)
    for (const c of [...pubs, ...subs]) if (c.socket !== undefined) c.close()
  }
}

export function formatLoadReport (r: LoadReport): string {
  const l = r.latencyMs
  return [
    `load ${r.mode} QoS ${r.qos} -> ${r.broker}: ${r.connections} publishers, ${r.subscribers} subscribers, ${r.payloadBytes} B payloads, ${r.sendSeconds.toFixed(1)} s${r.warmupSeconds > 0 ? ` measured after ${r.warmupSeconds} s of warm-up` : ''}`,
    `  published ${r.published} (${r.publishedPerSec}/s)${r.qos === 1 ? `, acked ${r.acked} (${r.ackedPerSec}/s)` : ''}`,
    `  delivered ${r.deliveries} (${r.deliveriesPerSec}/s), undelivered ${r.undelivered}, gaps ${r.gaps}, out of order ${r.outOfOrder}`,
    `  latency publish->deliver: p50 ${l.p50} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms${r.windowFullTicks > 0 ? ` (window full in ${r.windowFullTicks} pacing ticks: the broker held the rate back)` : ''}`,
    `  generator CPU ${(r.generatorCpuCores * 100).toFixed(0)}% of one core, max RSS ${(r.maxRssBytes / 1048576).toFixed(1)} MiB`
  ].join('\n')
}
