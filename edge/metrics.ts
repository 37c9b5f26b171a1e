// Prometheus metrics of the edge. Cheap by construction: the broker keeps plain counters
// (BrokerStats) and the registry reads them only when /metrics is scraped; the one per-message
// cost is the ack-latency histogram observation.
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

  const ackLatency = new Histogram({
    name: 'tributary_edge_ack_latency_seconds',
    help: 'Time from append to durable for QoS 1/2 publishes (what delays PUBACK/PUBREC)',
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: []
  })
  registry.registerMetric(ackLatency)

  return {
    registry,
    observeAckSeconds: (seconds) => { ackLatency.observe(seconds) },
    attach: (b) => { broker = b },
    gauge: (name, help, read) => {
      registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
    }
  }
}
