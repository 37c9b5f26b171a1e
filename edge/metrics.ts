// Prometheus metrics of the edge. Cheap by construction: the broker keeps plain counters
// (BrokerStats) and the registry reads them only when /metrics is scraped; the one per-message
// cost is the ack-latency histogram observation, which only counts into a preallocated array
// (prom-client's Histogram.observe allocates a closure and label objects per call: garbage on
// every QoS 1 ack, i.e. more young-generation scavenges in the latency tail).
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { TributaryBroker } from '../src/mqtt/broker.js'

export interface EdgeMetrics {
  registry: Registry
  observeAckSeconds: (seconds: number) => void
  attach: (broker: TributaryBroker) => void
  // A gauge read at scrape time (e.g. commitlog offsets).
  gauge: (name: string, help: string, read: () => number) => void
}

export function createEdgeMetrics (): EdgeMetrics {
  const registry = new Registry()
  let broker: TributaryBroker | undefined

  // A counter whose value is read from the broker at scrape time.
  function scrapedCounter (name: string, help: string, read: (b: TributaryBroker) => number): void {
    registry.registerMetric(new Counter({
      name,
      help,
      registers: [],
      collect () { this.reset(); if (broker !== undefined) this.inc(read(broker)) }
    }))
  }

  registry.registerMetric(new Gauge({
    name: 'tributary_edge_connections',
    help: 'Open client connections over all listeners',
    registers: [],
    collect () { this.set(broker?.gate.active ?? 0) }
  }))
  scrapedCounter('tributary_edge_connections_refused_total', 'Connections refused at maxConnections', (b) => b.gate.refused)
  scrapedCounter('tributary_edge_messages_in_total', 'PUBLISH packets accepted from clients', (b) => b.stats.publishesIn)
  scrapedCounter('tributary_edge_payload_bytes_in_total', 'Payload bytes of accepted PUBLISH packets', (b) => b.stats.payloadBytesIn)
  scrapedCounter('tributary_edge_appended_total', 'Records appended to the commitlog', (b) => b.stats.appended)
  scrapedCounter('tributary_edge_append_failures_total', 'Appends that failed (publish refused, nothing acked)', (b) => b.stats.appendFailures)
  scrapedCounter('tributary_edge_client_errors_total', 'Client connections closed on an error', (b) => b.stats.clientErrors)
  scrapedCounter('tributary_edge_packet_too_large_total', 'Connections closed for exceeding maxPacketBytes', (b) => b.stats.packetTooLarge)

  const ackLatency = new PreallocatedHistogram(
    'tributary_edge_ack_latency_seconds',
    'Time from append to durable for QoS 1/2 publishes (what delays PUBACK/PUBREC)',
    [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5]
  )
  // The registry only calls name/get/reset (and reads help/type/aggregator from get()).
  registry.registerMetric(ackLatency as unknown as Histogram)

  return {
    registry,
    observeAckSeconds: (seconds) => { ackLatency.observe(seconds) },
    attach: (b) => { broker = b },
    gauge: (name, help, read) => {
      registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
    }
  }
}

// A label-less Prometheus histogram whose observe() allocates nothing: per-bucket counts in a
// typed array, turned into prom-client's value objects only when /metrics is scraped.
class PreallocatedHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly counts: Float64Array // counts[i]: observations <= bounds[i] and > bounds[i-1]; last: +Inf
  private sum = 0
  private count = 0

  constructor (readonly name: string, readonly help: string, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += value
    this.count++
  }

  reset (): void { this.counts.fill(0); this.sum = 0; this.count = 0 }

  // The shape prom-client's Registry formats (cumulative buckets, then _sum and _count).
  get (): { name: string, help: string, type: string, aggregator: string, values: Array<{ metricName: string, labels: Record<string, string | number>, value: number }> } {
    const values: Array<{ metricName: string, labels: Record<string, string | number>, value: number }> = []
    let cumulative = 0
    for (let i = 0; i <= this.bounds.length; i++) {
      cumulative += this.counts[i] as number
      values.push({ metricName: `${this.name}_bucket`, labels: { le: i < this.bounds.length ? this.bounds[i] as number : '+Inf' }, value: cumulative })
    }
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum })
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
