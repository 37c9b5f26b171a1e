// The final report: one JSON-able object (`--report json`) and its human summary.
import type { Histogram } from 'hdr-histogram-js'
import { DeviceAccount, type Checker } from './checker.js'
import type { Commander } from './commander.js'
import type { FleetTotals } from './device.js'
import type { Fleet } from './fleet.js'
import type { AppliedFault } from './fault/runner.js'

export interface LatencySummary { count: number, p50: number, p99: number, p999: number, max: number }

// Histograms record microseconds; reports show milliseconds with µs precision.
export function summarize (h: Histogram): LatencySummary {
  const ms = (us: number): number => Math.round(us) / 1000
  if (h.totalCount === 0) return { count: 0, p50: 0, p99: 0, p999: 0, max: 0 }
  return { count: h.totalCount, p50: ms(h.getValueAtPercentile(50)), p99: ms(h.getValueAtPercentile(99)), p999: ms(h.getValueAtPercentile(99.9)), max: ms(h.maxValue) }
}

export interface DeviceProblem { id: string, group: string, sent: number, received: number, lost: number, duplicates: number, reordered: number, lostSeqs: number[] }

export interface SimReport {
  ok: boolean
  runId: number
  broker: string
  checkUrl: string
  scenario: string | null
  devices: number
  durationMs: number
  // Time until every device had connected once (null: not all did); 100 ms resolution.
  rampMs: number | null
  sent: number
  received: number
  lost: number
  duplicates: number
  reordered: number
  foreign: number
  latencyMs: LatencySummary
  fleet: FleetTotals
  commands: { sent: number, replied: number, timedOut: number, rttMs: LatencySummary } | null
  faults: AppliedFault[]
  // Devices with any loss, duplicate or reordering (first 100), lost sequence numbers sampled.
  problems: DeviceProblem[]
  process: { maxRssBytes: number, cpuUserMs: number, cpuSystemMs: number }
}

// How many devices and lost sequence numbers per device a report lists: enough to investigate,
// bounded so a total loss on 10,000 devices does not produce a 100 MB report.
const MAX_PROBLEM_DEVICES = 100
const MAX_LOST_SEQS = 20
const NOTHING_RECEIVED = new DeviceAccount()

export function buildReport (fleet: Fleet, checker: Checker, commander: Commander | null, meta: { runId: number, broker: string, checkUrl: string, scenario: string | null, durationMs: number, rampMs: number | null, faults: AppliedFault[], maxRssBytes: number, cpu: NodeJS.CpuUsage }): SimReport {
  let sent = 0; let received = 0; let lost = 0; let duplicates = 0; let reordered = 0
  const problems: DeviceProblem[] = []
  for (const d of fleet.devices) {
    const a = checker.accounts[d.index]
    const got = a === undefined ? 0 : a.receivedUpTo(d.seq)
    const dup = a?.duplicates ?? 0
    const reo = a?.reordered ?? 0
    sent += d.seq
    received += got
    lost += d.seq - got
    duplicates += dup
    reordered += reo
    if ((d.seq - got > 0 || dup > 0 || reo > 0) && problems.length < MAX_PROBLEM_DEVICES) {
      problems.push({ id: d.id, group: d.spec.group, sent: d.seq, received: got, lost: d.seq - got, duplicates: dup, reordered: reo, lostSeqs: (a ?? NOTHING_RECEIVED).missing(d.seq, MAX_LOST_SEQS) })
    }
  }
  return {
    ok: lost === 0,
    runId: meta.runId,
    broker: meta.broker,
    checkUrl: meta.checkUrl,
    scenario: meta.scenario,
    devices: fleet.devices.length,
    durationMs: meta.durationMs,
    rampMs: meta.rampMs,
    sent,
    received,
    lost,
    duplicates,
    reordered,
    foreign: checker.foreign,
    latencyMs: summarize(checker.latencyUs),
    fleet: { ...fleet.totals },
    commands: commander === null ? null : { sent: commander.sent, replied: commander.replied, timedOut: commander.timedOut + commander.pending, rttMs: summarize(commander.rttUs) },
    faults: meta.faults,
    problems,
    process: { maxRssBytes: meta.maxRssBytes, cpuUserMs: Math.round(meta.cpu.user / 1000), cpuSystemMs: Math.round(meta.cpu.system / 1000) }
  }
}

function lat (l: LatencySummary): string {
  return l.count === 0 ? 'no samples' : `p50 ${l.p50} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms (${l.count} samples)`
}

export function formatReport (r: SimReport): string {
  const lines = [
    `simulator run ${r.runId}${r.scenario === null ? '' : ` (scenario ${r.scenario})`}: ${r.devices} devices -> ${r.broker}, checked at ${r.checkUrl}, ${(r.durationMs / 1000).toFixed(1)} s`,
    `  sent ${r.sent}, received ${r.received}, LOST ${r.lost}, duplicates ${r.duplicates}, reordered ${r.reordered}${r.foreign > 0 ? `, foreign ${r.foreign}` : ''}`,
    `  latency publish->receive: ${lat(r.latencyMs)}`,
    `  devices: ${r.rampMs === null ? 'not all connected' : `all connected after ${(r.rampMs / 1000).toFixed(1)} s`}; ${r.fleet.connects} connects, ${r.fleet.reconnects} reconnects, ${r.fleet.keepaliveTimeouts} keepalive timeouts, ${r.fleet.connectFailures} failed attempts; ${r.fleet.resent} resent, ${r.fleet.skipped} readings skipped while offline`
  ]
  if (r.commands !== null) lines.push(`  commands: ${r.commands.sent} sent, ${r.commands.replied} replied, ${r.commands.timedOut} without reply; round trip ${lat(r.commands.rttMs)}`)
  for (const f of r.faults) lines.push(`  fault '${f.spec}' from ${(f.startedAtMs / 1000).toFixed(1)} s to ${f.endedAtMs === null ? 'end' : (f.endedAtMs / 1000).toFixed(1) + ' s'}`)
  for (const p of r.problems.slice(0, 10)) lines.push(`  ${p.id}: sent ${p.sent}, received ${p.received}, lost ${p.lost}${p.lostSeqs.length > 0 ? ` (seq ${p.lostSeqs.join(',')})` : ''}, duplicates ${p.duplicates}, reordered ${p.reordered}`)
  if (r.problems.length > 10) lines.push(`  ... ${r.problems.length - 10} more devices with problems (see --report json)`)
  lines.push(`  simulator process: max RSS ${(r.process.maxRssBytes / 1048576).toFixed(1)} MiB, CPU ${r.process.cpuUserMs + r.process.cpuSystemMs} ms`)
  lines.push(r.ok ? 'OK: no message lost' : `LOSS: ${r.lost} messages lost`)
  return lines.join('\n')
}
