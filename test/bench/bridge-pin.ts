// Pinning for the bridge benchmarks (BENCH_BRIDGE_PIN=0 turns it off): every thread of the edge
// side on core 0, of the cloud side on core 1 (`taskset -a`), for Tributary and its peers alike.
import { spawnSync } from 'node:child_process'

const PIN = process.env.BENCH_BRIDGE_PIN !== '0'
export const EDGE_CORE = 0
export const CLOUD_CORE = 1

export function pin (pid: number | undefined, core: number): void {
  if (!PIN || pid === undefined) return
  const r = spawnSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' })
  if (r.status !== 0) console.error(`bench: could not pin pid ${pid} to core ${core} (taskset missing?)`)
}

// Lets this process run on every core again (it was pinned as the edge side of a drain).
export function unpinSelf (): void {
  if (PIN) spawnSync('taskset', ['-a', '-cp', '0-1023', String(process.pid)], { stdio: 'ignore' })
}
