// The edge's ack-latency histogram counts into a preallocated array; /metrics must still show a
// Prometheus histogram: cumulative buckets (an observation equal to a bound falls in that
// bucket), +Inf, _sum and _count.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createEdgeMetrics } from '../../edge/metrics.js'

test('ack-latency histogram: cumulative buckets, +Inf, sum and count in the Prometheus text', async () => {
  const m = createEdgeMetrics()
  for (const s of [0.00005, 0.0001, 0.0003, 0.003, 3]) m.observeAckSeconds(s)
  const text = await m.registry.metrics()
  const line = (suffix: string): string | undefined => text.split('\n').find((l) => l.startsWith('tributary_edge_ack_latency_seconds' + suffix))
  assert.match(text, /^# TYPE tributary_edge_ack_latency_seconds histogram$/m)
  assert.equal(line('_bucket{le="0.0001"}'), 'tributary_edge_ack_latency_seconds_bucket{le="0.0001"} 2')
  assert.equal(line('_bucket{le="0.0005"}'), 'tributary_edge_ack_latency_seconds_bucket{le="0.0005"} 3')
  assert.equal(line('_bucket{le="0.002"}'), 'tributary_edge_ack_latency_seconds_bucket{le="0.002"} 3')
  assert.equal(line('_bucket{le="0.005"}'), 'tributary_edge_ack_latency_seconds_bucket{le="0.005"} 4')
  assert.equal(line('_bucket{le="0.5"}'), 'tributary_edge_ack_latency_seconds_bucket{le="0.5"} 4')
  assert.equal(line('_bucket{le="+Inf"}'), 'tributary_edge_ack_latency_seconds_bucket{le="+Inf"} 5')
  assert.equal(line('_count'), 'tributary_edge_ack_latency_seconds_count 5')
  const sum = Number(line('_sum ')?.split(' ')[1])
  assert.ok(Math.abs(sum - 3.00345) < 1e-9, `sum ${sum}`)
})

test('ack-latency histogram: registry reset zeroes it', async () => {
  const m = createEdgeMetrics()
  m.observeAckSeconds(0.001)
  m.registry.resetMetrics()
  assert.match(await m.registry.metrics(), /^tributary_edge_ack_latency_seconds_count 0$/m)
})
