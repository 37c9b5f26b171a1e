// A real 3-node nats-server cluster with JetStream on loopback, for tests.
// Every node gets its own client + cluster port (freePort()), store dir and config file under one
// temp dir. The harness starts processes, tracks them by PID and stops them by PID; restart(i)
// brings a node back with the same ports, name and store dir, as an operator would.
//
// Debian ships nats-server 2.9 (/usr/sbin/nats-server). Under CI=true a missing binary must FAIL
// the test, not skip it: use natsServerOrSkip(t).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { StorageType, jetstreamManager } from '@nats-io/jetstream'
import { freePort, tempDir, waitFor } from './net.js'

const CANDIDATE_BINARIES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']

export function natsServerPath (): string | undefined {
  const fromEnv = process.env.NATS_SERVER_BIN
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv
  return CANDIDATE_BINARIES.find((p) => existsSync(p))
}

// Returns the binary path, or undefined after marking the test skipped. Throws under CI=true.
export function natsServerOrSkip (t: { skip: (msg?: string) => void }): string | undefined {
  const bin = natsServerPath()
  if (bin !== undefined) return bin
  if (process.env.CI === 'true') throw new Error('nats-server not found (CI=true: required). Install Debian package nats-server.')
  t.skip('nats-server not installed')
  return undefined
}

export interface NatsNode {
  readonly index: number
  readonly name: string
  readonly clientPort: number
  readonly clusterPort: number
  readonly url: string
  readonly storeDir: string
  readonly configFile: string
  readonly logFile: string
  pid: number | undefined
  // 'running' | 'frozen' | 'stopped'
  state: 'running' | 'frozen' | 'stopped'
}

export interface NatsClusterOptions {
  size?: number
  // JetStream limits per node. Small on purpose: the machine is shared by parallel tests.
  maxMemBytes?: number
  maxFileBytes?: number
  // How long start()/restart() wait for a JetStream meta leader.
  readyTimeoutMs?: number
  binary?: string
}

export interface NatsCluster {
  readonly nodes: readonly NatsNode[]
  // Client URLs of all nodes (nats://127.0.0.1:port), for a client's server list.
  readonly urls: readonly string[]
  readonly dir: string
  // Send `signal` to node i and, unless it is SIGSTOP/SIGCONT, wait until the process is gone.
  kill: (i: number, signal?: NodeJS.Signals) => Promise<void>
  // Start node i again with the same config (ports, name, store dir) and wait for it to serve JS.
  restart: (i: number) => Promise<void>
  freeze: (i: number) => void
  thaw: (i: number) => void
  // Wait until JetStream answers with a meta leader (through any running node) and a stream
  // replicated on every running node (up to 3) can be placed.
  waitReady: (timeoutMs?: number) => Promise<void>
  // Stop every node (SIGTERM, then SIGKILL after a grace period); keeps the directory.
  stopAll: () => Promise<void>
  // Start every stopped node again (whole-cluster restart).
  startAll: () => Promise<void>
  // Stop everything and remove the temp dir. Idempotent.
  stop: () => Promise<void>
  // Last lines of a node's log, for failure messages.
  logTail: (i: number, lines?: number) => Promise<string>
}

// Processes started by any cluster in this test process: killed on exit as a last resort, so a
// failed test never leaves a nats-server behind on the shared machine.
const livePids = new Set<number>()
let exitHookInstalled = false
function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const pid of livePids) {
      try { process.kill(pid, 'SIGCONT') } catch {}
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
  })
}

function nodeConfig (node: NatsNode, all: readonly NatsNode[], opts: Required<Pick<NatsClusterOptions, 'maxMemBytes' | 'maxFileBytes'>>): string {
  const routes = all.filter((n) => n !== node).map((n) => `    nats-route://127.0.0.1:${n.clusterPort}`).join('\n')
  // nats-server 2.9 config syntax (HCL-like). JSON-quoted strings are valid there.
  return [
    `server_name: ${JSON.stringify(node.name)}`,
    `listen: "127.0.0.1:${node.clientPort}"`,
    `log_file: ${JSON.stringify(node.logFile)}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(node.storeDir)}`,
    `  max_mem: ${opts.maxMemBytes}`,
    `  max_file: ${opts.maxFileBytes}`,
    '}',
    // A single server must not have a cluster block: JetStream would wait for routes forever.
    ...(all.length === 1 ? [] : clusterBlock(node, routes)),
    ''
  ].join('\n')
}

function clusterBlock (node: NatsNode, routes: string): string[] {
  return [
    'cluster {',
    '  name: "tributary-test"',
    `  listen: "127.0.0.1:${node.clusterPort}"`,
    '  routes: [',
    routes,
    '  ]',
    '}'
  ]
}

// Ports come from freePort() and are bound by nats-server a moment later; a test file running in
// parallel can take one in between ("address already in use", seen once in a full run). Such a
// start is retried with fresh ports; any other failure is thrown at once.
const START_ATTEMPTS = 3

export async function startNatsCluster (options: NatsClusterOptions = {}): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsClusterOnce(options)
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !(err as Error).message.includes('address already in use')) throw err
    }
  }
}

async function startNatsClusterOnce (options: NatsClusterOptions): Promise<NatsCluster> {
  const binary = options.binary ?? natsServerPath()
  if (binary === undefined) throw new Error('nats-server not found')
  const size = options.size ?? 3
  const limits = {
    maxMemBytes: options.maxMemBytes ?? 64 * 1024 * 1024,
    maxFileBytes: options.maxFileBytes ?? 1024 * 1024 * 1024
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000
  installExitHook()

  const dir = await tempDir('nats')
  const nodes: NatsNode[] = []
  for (let i = 0; i < size; i++) {
    const name = `n${i + 1}`
    const clientPort = await freePort()
    const clusterPort = await freePort()
    const storeDir = join(dir.path, name, 'store')
    await mkdir(storeDir, { recursive: true })
    nodes.push({
      index: i,
      name,
      clientPort,
      clusterPort,
      url: `nats://127.0.0.1:${clientPort}`,
      storeDir,
      configFile: join(dir.path, name, 'nats.conf'),
      logFile: join(dir.path, name, 'nats.log'),
      pid: undefined,
      state: 'stopped'
    })
  }
  for (const node of nodes) await writeFile(node.configFile, nodeConfig(node, nodes, limits))

  const children = new Map<number, ChildProcess>()
  let removed = false

  function launch (node: NatsNode): void {
    const child = spawn(binary as string, ['-c', node.configFile], { stdio: ['ignore', 'ignore', 'pipe'] })
    // stderr only carries start-up failures (the log goes to log_file); keep the last bit.
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
    if (child.pid === undefined) throw new Error(`could not start nats-server ${node.name}`)
    const pid = child.pid
    node.pid = pid
    node.state = 'running'
    livePids.add(pid)
    children.set(node.index, child)
    child.once('exit', (code, signal) => {
      livePids.delete(pid)
      if (node.pid === pid) { node.pid = undefined; node.state = 'stopped' }
      if (code !== 0 && code !== null && stderr !== '') process.stderr.write(`nats-server ${node.name} exited ${code}: ${stderr}\n`)
      void signal
    })
  }

  async function waitPortOpen (node: NatsNode): Promise<void> {
    await waitFor(`nats-server ${node.name} client port ${node.clientPort}`, async () => {
      if (node.state === 'stopped') throw new Error(`nats-server ${node.name} exited during start-up: ${await logTail(node.index, 20)}`)
      return await canConnect(node.url)
    }, readyTimeoutMs)
  }

  async function waitReady (timeoutMs = readyTimeoutMs): Promise<void> {
    const urls = nodes.filter((n) => n.state === 'running').map((n) => n.url)
    if (urls.length === 0) throw new Error('no nats-server running')
    await waitFor('JetStream meta leader and every running node placeable', async () => await jetStreamPlaces(urls), timeoutMs, 200)
  }

  async function kill (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = nodes[i]
    const child = children.get(i)
    if (node === undefined || node.pid === undefined || child === undefined) return
    if (node.state === 'frozen' && signal !== 'SIGCONT') {
      // A stopped process does not act on SIGTERM until it runs again.
      try { process.kill(node.pid, 'SIGCONT') } catch {}
    }
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve(); return }
      child.once('exit', () => resolve())
    })
    try { process.kill(node.pid, signal) } catch {}
    await exited
    node.state = 'stopped'
    node.pid = undefined
    children.delete(i)
  }

  async function stopNode (i: number, graceMs = 5_000): Promise<void> {
    const node = nodes[i]
    if (node === undefined || node.pid === undefined) return
    const pid = node.pid
    const timer = setTimeout(() => { try { process.kill(pid, 'SIGKILL') } catch {} }, graceMs)
    try { await kill(i, 'SIGTERM') } finally { clearTimeout(timer) }
  }

  async function restart (i: number): Promise<void> {
    const node = nodes[i]
    if (node === undefined) throw new Error(`no node ${i}`)
    if (node.state !== 'stopped') await stopNode(i)
    launch(node)
    await waitPortOpen(node)
    await waitReady()
  }

  function freeze (i: number): void {
    const node = nodes[i]
    if (node?.pid === undefined) throw new Error(`node ${i} not running`)
    process.kill(node.pid, 'SIGSTOP')
    node.state = 'frozen'
  }

  function thaw (i: number): void {
    const node = nodes[i]
    if (node?.pid === undefined) throw new Error(`node ${i} not running`)
    process.kill(node.pid, 'SIGCONT')
    node.state = 'running'
  }

  async function stopAll (): Promise<void> {
    await Promise.all(nodes.map(async (n) => { await stopNode(n.index) }))
  }

  async function startAll (): Promise<void> {
    for (const node of nodes) if (node.state === 'stopped') launch(node)
    for (const node of nodes) await waitPortOpen(node)
    await waitReady()
  }

  async function stop (): Promise<void> {
    await stopAll()
    if (!removed) { removed = true; await dir.remove() }
  }

  async function logTail (i: number, lines = 40): Promise<string> {
    const node = nodes[i]
    if (node === undefined) return ''
    try {
      const text = await readFile(node.logFile, 'utf8')
      return text.split('\n').slice(-lines).join('\n')
    } catch { return '(no log)' }
  }

  try {
    for (const node of nodes) launch(node)
    for (const node of nodes) await waitPortOpen(node)
    await waitReady()
  } catch (err) {
    const logs = await Promise.all(nodes.map(async (n) => `--- ${n.name}\n${await logTail(n.index, 15)}`))
    await stop()
    throw new Error(`nats cluster did not become ready: ${(err as Error).message}\n${logs.join('\n')}`)
  }

  return {
    nodes,
    get urls () { return nodes.map((n) => n.url) },
    dir: dir.path,
    kill,
    restart,
    freeze,
    thaw,
    waitReady,
    stopAll,
    startAll,
    stop,
    logTail
  }
}

async function canConnect (url: string): Promise<boolean> {
  let nc: NatsConnection | undefined
  try {
    nc = await connect({ servers: url, timeout: 1_000, reconnect: false })
    return true
  } catch {
    return false
  } finally {
    if (nc !== undefined) await nc.close().catch(() => {})
  }
}

// True when some node answers a JetStream API request: that needs a JetStream meta leader.
// Ready: a meta leader answers AND a stream replicated on every running node can be placed. An
// answering meta leader alone was not enough: right after start the leader may not know all
// peers yet, and an R3 stream created then failed with "no suitable peers for placement" (10005).
// The probe is a memory stream, deleted at once.
async function jetStreamPlaces (urls: readonly string[]): Promise<boolean> {
  let nc: NatsConnection | undefined
  try {
    nc = await connect({ servers: [...urls], timeout: 1_000, reconnect: false })
    const jsm = await jetstreamManager(nc, { timeout: 1_000 })
    await jsm.getAccountInfo()
    const id = `${process.pid}_${Date.now()}`
    const name = `HARNESS_READY_${id}`
    await jsm.streams.add({ name, subjects: [`_harness_ready.${id}`], num_replicas: Math.min(3, urls.length), storage: StorageType.Memory })
    await jsm.streams.delete(name)
    return true
  } catch {
    return false
  } finally {
    if (nc !== undefined) await nc.close().catch(() => {})
  }
}
