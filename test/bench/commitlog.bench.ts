// Commitlog append throughput per flush policy vs raw sequential fs.writeSync of the same bytes.
// Standalone: `node --import tsx test/bench/commitlog.bench.ts`; or `run()` from a bench runner.
// Measured: time from the first append until the last durable callback (so `always`/`interval`
// include their fsyncs), appends issued in bursts of BURST per event-loop turn like a busy broker.
// Also reported: CPU time of the event-loop thread per append (Linux: /proc/self/task/<pid>/
// schedstat), which a loaded machine inflates much less than wall time, and the load average.
// BENCH_RUNS (default 5) sets the runs per case; BENCH_CASES=100:interval,1024:interval picks cases;
// BENCH_TOPICS (default 100) the number of topics the appends go round (one topic per device:
// try 10000).
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommitLog, type FlushPolicy } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const ONLY = process.env.BENCH_CASES === undefined ? null : new Set(process.env.BENCH_CASES.split(','))
const BURST = 1000
const TOPICS = Number(process.env.BENCH_TOPICS ?? 100)
const CASES = [
  { payloadBytes: 100, records: 500_000 },
  { payloadBytes: 1024, records: 100_000 }
]
const POLICIES: FlushPolicy[] = ['none', 'interval', 'always']

// Nanoseconds the event-loop thread has run on a CPU (NaN where /proc is not available).
function loopThreadCpuNs (): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0])
  } catch {
    return NaN
  }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

async function appendRun (policy: FlushPolicy, payloadBytes: number, records: number): Promise<{ seconds: number, bytes: number, loopCpuNs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-cl-'))
  try {
    const options = {
      dir, segmentBytes: 64 * 1024 * 1024, flushPolicy: policy, flushIntervalMs: 10, maxRecordBytes: 1024 * 1024,
      retentionBytes: 0, retentionMs: 0, log: silentLogger()
    }
    const payload = Buffer.alloc(payloadBytes, 0x61)
    const topics = Array.from({ length: TOPICS }, (_, i) => `site/1/device/${i}/telemetry`)
    const input = { topic: '', payload, qos: 1 as const, retain: false, clientId: 'bench-client' }
    // The topics exist before the measured appends (one record each, then a clean close), as in a
    // running edge: creating a topic's index file took ~1 ms on this machine's disk, a one-time
    // cost per topic that a fresh log would otherwise put into the figure (~0.1 s per run with
    // 100 topics; runs before session 5 included it).
    const setup = await CommitLog.open(options)
    for (const topic of topics) { input.topic = topic; setup.append(input) }
    await setup.close()
    const log = await CommitLog.open(options)
    let acked = 0
    let done: () => void = () => {}
    const finished = new Promise<void>((resolve) => { done = resolve })
    const onDurable = (err: Error | null): void => {
      if (err !== null) throw err
      if (++acked === records) done()
    }
    const cpu0 = loopThreadCpuNs()
    const start = process.hrtime.bigint()
    let i = 0
    const burst = (): void => {
      const stop = Math.min(records, i + BURST)
      for (; i < stop; i++) {
        input.topic = topics[i % TOPICS] as string
        log.append(input, onDurable)
      }
      if (i < records) setImmediate(burst)
    }
    burst()
    await finished
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    const loopCpuNs = (loopThreadCpuNs() - cpu0) / records
    const bytes = log.endOffset
    await log.close()
    return { seconds, bytes, loopCpuNs }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// The disk's limit: the same number of bytes in 1 MiB writeSync calls, one fsync at the end.
function rawRun (bytes: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-raw-'))
  try {
    const chunk = Buffer.alloc(1024 * 1024, 0x62)
    const fd = openSync(join(dir, 'raw'), 'w')
    const start = process.hrtime.bigint()
    for (let left = bytes; left > 0;) {
      const n = Math.min(left, chunk.length)
      writeSync(fd, chunk, 0, n)
      left -= n
    }
    fsyncSync(fd)
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    closeSync(fd)
    return seconds
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function run (): Promise<string> {
  const rows: string[] = []
  const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' / ')
  const loadBefore = load()
  rows.push('| payload | flush policy | appends/s (median) | MB/s | raw writeSync MB/s (median) | vs raw (median of per-run ratios) | event-loop CPU ns/append (median) | runs |')
  rows.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |')
  for (const c of CASES) {
    for (const policy of POLICIES) {
      if (ONLY !== null && !ONLY.has(`${c.payloadBytes}:${policy}`)) continue
      const rates: number[] = []
      const mbs: number[] = []
      const raws: number[] = []
      const ratios: number[] = []
      const cpus: number[] = []
      for (let r = 0; r < RUNS; r++) {
        const { seconds, bytes, loopCpuNs } = await appendRun(policy, c.payloadBytes, c.records)
        const raw = bytes / rawRun(bytes) / 1e6
        rates.push(c.records / seconds)
        mbs.push(bytes / seconds / 1e6)
        raws.push(raw)
        // Each run is compared with the raw run right after it (same load), then the median.
        ratios.push(bytes / seconds / 1e6 / raw)
        cpus.push(loopCpuNs)
      }
      rows.push(`| ${c.payloadBytes} B | ${policy} | ${Math.round(median(rates)).toLocaleString('en-US')} | ${median(mbs).toFixed(0)} | ${median(raws).toFixed(0)} | ${(100 * median(ratios)).toFixed(0)}% | ${median(cpus).toFixed(0)} | ${RUNS} x ${c.records.toLocaleString('en-US')} records, spread ${Math.round(Math.min(...rates)).toLocaleString('en-US')} to ${Math.round(Math.max(...rates)).toLocaleString('en-US')}/s |`)
    }
  }
  rows.push('')
  rows.push(`Load average (1 / 5 / 15 min) before: ${loadBefore}; after: ${load()}; ${availableParallelism()} CPUs.`)
  return rows.join('\n')
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() as string)) {
  console.log(await run())
}
