// Child processes for bridge end-to-end tests: the edge fixture and the simulator.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const EDGE_CHILD = fileURLToPath(new URL('./bridge-edge-child.ts', import.meta.url))
// Children must not inherit the test runner's context (a node:test child reports over stdout).
function childEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  return env
}

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

export interface EdgeStatus { state: string, ackedOffset: number, lagBytes: number, lagMessages: number, dropped: number, endOffset: number }

export interface EdgeProcess {
  child: ChildProcess
  mqttPort: number
  lastStatus: () => EdgeStatus | undefined
  stderr: () => string
  stop: () => Promise<void>
  kill: () => Promise<void>
}

export async function startEdgeProcess (args: string[], timeoutMs = 20_000): Promise<EdgeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', EDGE_CHILD, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  let buf = ''
  let err = ''
  let status: EdgeStatus | undefined
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  let readyCleanup = (): void => {}
  child.stderr!.on('data', (c: Buffer) => { err += c.toString(); if (err.length > 1_000_000) err = err.slice(-500_000) })
  const mqttPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`edge did not start:\n${err}`)) }, timeoutMs)
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (!line.startsWith('{')) continue
        const msg = JSON.parse(line) as { event: string, mqttPort?: number } & EdgeStatus
        if (msg.event === 'edge-ready') { clearTimeout(timer); resolve(msg.mqttPort!) } else if (msg.event === 'edge-status') status = msg
      }
    })
    const onEarlyExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`edge exited with ${code}:\n${err}`)) }
    child.once('exit', onEarlyExit)
    readyCleanup = () => { child.off('exit', onEarlyExit) }
  })
  readyCleanup()
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig)
    await exited
  }
  return { child, mqttPort, lastStatus: () => status, stderr: () => err, stop: async () => { await signal('SIGTERM') }, kill: async () => { await signal('SIGKILL') } }
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
