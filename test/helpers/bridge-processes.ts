// Helpers for bridge end-to-end tests: the simulator as a child process, the edge bridge's state
// from /metrics, and an accounting of the cloud store.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

// Children must not inherit the test runner's context (a node:test child reports over stdout).
function childEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  return env
}

export interface BridgeStatusFromMetrics { connected: boolean, ackedOffset: number, lagBytes: number, lagMessages: number, dropped: number }

// The edge's bridge state, read from its /metrics (a real `tributary edge` process).
export async function scrapeBridge (httpPort: number): Promise<BridgeStatusFromMetrics | undefined> {
  let text: string
  try {
    text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  } catch {
    return undefined
  }
  const metric = (name: string): number => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
    return m === null ? NaN : Number(m[1])
  }
  return {
    connected: metric('tributary_bridge_connected') === 1,
    ackedOffset: metric('tributary_bridge_acked_offset'),
    lagBytes: metric('tributary_bridge_lag_bytes'),
    lagMessages: metric('tributary_bridge_lag_messages'),
    dropped: metric('tributary_bridge_dropped_records_total')
  }
}

export interface SimResult { code: number | null, report: { sent?: number, lost?: number, duplicates?: number, [k: string]: unknown }, stderr: string }

// Runs `tributary sim` to completion (JSON report on stdout).
export async function runSimProcess (args: string[]): Promise<SimResult> {
  const child = spawn(process.execPath, [CLI, 'sim', '--report', 'json', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  let out = ''
  let err = ''
  child.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { err += c.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => { resolve(c) }))
  const line = out.split('\n').reverse().find((l) => l.startsWith('{')) ?? '{}'
  return { code, report: JSON.parse(line), stderr: err }
}

export function spawnSimProcess (args: string[]): { child: ChildProcess, done: Promise<SimResult> } {
  const child = spawn(process.execPath, [CLI, 'sim', '--report', 'json', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  let out = ''
  let err = ''
  child.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { err += c.toString() })
  const done = new Promise<SimResult>((resolve) => child.once('exit', (code) => {
    const line = out.split('\n').reverse().find((l) => l.startsWith('{')) ?? '{}'
    resolve({ code, report: JSON.parse(line), stderr: err })
  }))
  return { child, done }
}

export interface StoreAccount { records: number, distinct: number, duplicates: number, outOfOrder: number, gaps: number, devices: number }

// Reads the whole cloud store over HTTP (/read) and accounts the simulator's messages of `runId`:
// each (device, seq) should be there exactly once, in increasing seq order per device, with no gap.
export async function storeAccounting (httpPort: number, runId: number): Promise<StoreAccount> {
  const { decodeStamp } = await import('../../firmware-sim/payload.js')
  const seen = new Map<number, Set<number>>()
  const last = new Map<number, number>()
  const acc: StoreAccount = { records: 0, distinct: 0, duplicates: 0, outOfOrder: 0, gaps: 0, devices: 0 }
  const stamp = { run: 0, device: 0, seq: 0, sentAtMs: 0 }
  let seq = 0
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/read?fromSeq=${seq}&limit=5000`)
    const body = await res.json() as { nextSeq: number, records: Array<{ payloadBase64: string }> }
    for (const r of body.records) {
      const p = Buffer.from(r.payloadBase64, 'base64')
      if (!decodeStamp(p, 0, p.length, stamp) || stamp.run !== runId) continue
      acc.records++
      let s = seen.get(stamp.device)
      if (s === undefined) { s = new Set(); seen.set(stamp.device, s) }
      if (s.has(stamp.seq)) { acc.duplicates++; continue }
      s.add(stamp.seq)
      if (stamp.seq < (last.get(stamp.device) ?? 0)) acc.outOfOrder++
      last.set(stamp.device, stamp.seq)
    }
    if (body.records.length === 0) break
    seq = body.nextSeq
  }
  for (const s of seen.values()) {
    acc.distinct += s.size
    const max = Math.max(...s)
    acc.gaps += max - s.size
  }
  acc.devices = seen.size
  return acc
}
