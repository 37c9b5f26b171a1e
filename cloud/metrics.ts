// Prometheus metrics of a cloud node: plain counters incremented on the hot path, read by
// prom-client only when /metrics is scraped. One registry per node (a process may run several
// nodes: the demo, tests).
import { Counter, Gauge, Registry } from 'prom-client'
import type { CloudStore } from './store/types.js'

export class CloudStats {
  edgesConnected = 0
  bridgeConnections = 0
  refusedAuth = 0
  frameErrors = 0
  edgeMismatch = 0
  fenced = 0
  batches = 0
  recordsAppended = 0
  recordsDuplicate = 0
  bytesIn = 0
  downlinksEnqueued = 0
  downlinksSent = 0
  downlinksAcked = 0
  downlinksExpired = 0
  dispatched = 0
  dispatchSeq = 0
  storeEndSeq = 0
}

export function createCloudRegistry (stats: CloudStats, store: CloudStore): Registry {
  const registry = new Registry()
  const counter = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Counter({ name, help, registers: [], collect () { this.reset(); this.inc(read()) } }))
  }
  const gauge = (name: string, help: string, read: () => number | Promise<number>): void => {
    registry.registerMetric(new Gauge({ name, help, registers: [], async collect () { this.set(await read()) } }))
  }
  gauge('tributary_cloud_edges_connected', 'Edges with an authenticated bridge connection', () => stats.edgesConnected)
  counter('tributary_cloud_bridge_connections_total', 'Bridge connections accepted (before auth)', () => stats.bridgeConnections)
  counter('tributary_cloud_bridge_refused_auth_total', 'Bridge connections refused: unknown edge or wrong token', () => stats.refusedAuth)
  counter('tributary_cloud_bridge_frame_errors_total', 'Bridge connections closed for a malformed or out-of-protocol frame', () => stats.frameErrors)
  counter('tributary_cloud_bridge_edge_mismatch_total', 'Batches that claimed another edge id', () => stats.edgeMismatch)
  counter('tributary_cloud_bridge_fenced_total', 'Appends refused because another connection or node holds the edge', () => stats.fenced)
  counter('tributary_cloud_batches_total', 'Batches ingested', () => stats.batches)
  counter('tributary_cloud_records_appended_total', 'Records written to the store', () => stats.recordsAppended)
  counter('tributary_cloud_records_duplicate_total', 'Records received again and skipped (idempotent replay)', () => stats.recordsDuplicate)
  counter('tributary_cloud_payload_bytes_in_total', 'Payload bytes received from edges', () => stats.bytesIn)
  counter('tributary_cloud_downlinks_enqueued_total', 'Downlinks published by cloud apps and stored', () => stats.downlinksEnqueued)
  counter('tributary_cloud_downlinks_sent_total', 'Downlinks sent over a bridge', () => stats.downlinksSent)
  counter('tributary_cloud_downlinks_acked_total', 'Downlinks acknowledged by edges (in the edge log)', () => stats.downlinksAcked)
  counter('tributary_cloud_downlinks_expired_total', 'Downlinks dropped because their TTL passed before delivery', () => stats.downlinksExpired)
  counter('tributary_cloud_dispatched_total', 'Records published to cloud MQTT subscribers', () => stats.dispatched)
  gauge('tributary_cloud_store_end_seq', 'End position of the store', async () => await store.endSeq())
  gauge('tributary_cloud_dispatch_lag_seq', 'Store positions not yet published to cloud MQTT subscribers', async () => Math.max(0, (await store.endSeq()) - stats.dispatchSeq))
  return registry
}
