// V8 young-generation settings of a broker process, for memory per idle connection (issue 2
// target: <= 12 KiB at 10,000 connections). Verified on Node 20 (V8 11.3).
//
// Why: a connection storm (thousands of CONNECTs a second) allocates ~40 KB per connection in
// aedes' connect path, of which ~5 KB stays live. The survivors make V8 double its semi-space up
// to its maximum (16 MiB each on 64-bit, 32 MiB resident), and once the new space is at that
// maximum V8 makes allocation-site pretenuring decisions: the connect path's allocation sites
// (most of whose objects die within milliseconds) are switched to allocate straight into the old
// generation, where that garbage stays until the next mark-compact. Measured on the bench's idle
// cell (10,000 connections, fresh broker, RSS growth per connection): V8 defaults 10 to 14 KiB;
// pretenuring off 8.5 to 9 KiB; semi-space capped at 8 MiB (below V8's maximum, so no pretenuring
// either, and 16 MiB less young generation) ~7 KiB. `node --max-semi-space-size=8` alone is not
// the same: the new space then reaches *its* maximum and pretenuring starts there (9.7-10.6 KiB).
//
// Costs (same-run A/B, see BENCHMARKS.md "Broker"): pretenuring off: within the noise. The cap
// doubles the scavenges (each about half as long, same total for QoS 1) and under QoS 0 overload,
// where the broker holds a backlog, costs ~1.5x scavenge time and ~10-20% broker CPU per message.
//
// disableAllocationSitePretenuring: V8 checks the flag at every scavenge, so setting it at run time
// works (it cannot be undone for code already compiled with pretenured sites; set it at start-up).
//
// capYoungGeneration: V8 reads `--semi-space-growth-factor` at every growth of the new space (the
// maximum size is fixed at start-up and cannot be changed later), so after each GC we keep the
// factor at 2 while the semi-space is below the cap and at 1 (no growth) once it has reached it.
// V8 still shrinks the new space when allocation is slow; the factor goes back to 2 then, so it can
// regrow up to the cap. Cost: one PerformanceObserver callback and one heap-space query per GC.
// Sizes are powers of two (V8 doubles from 1 MiB): a cap that is not one is reached at the next
// power of two.
import { arch } from 'node:os'
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import type { Logger } from '../log/index.js'

const MIB = 1024 * 1024
// V8's own growth factor (its default for --semi-space-growth-factor).
const DEFAULT_GROWTH_FACTOR = 2
// V8's default maximum semi-space: 16 MiB with 64-bit pointers, 8 MiB on 32-bit (armv7 Pis).
// A cap at or above it would let the new space reach V8's maximum, where pretenuring starts, so
// the cap used is at most half of it.
const V8_MAX_SEMI_SPACE_MIB = arch() === 'arm' || arch() === 'ia32' ? 8 : 16

export interface YoungGenerationCap {
  readonly semiSpaceCapBytes: number
  // Growth is currently stopped (the semi-space has reached the cap).
  readonly frozen: boolean
  // Current capacity of one semi-space, in bytes.
  semiSpaceBytes: () => number
  // Re-evaluates at once (also runs after every GC).
  check: () => void
  // Stops observing and restores V8's growth factor.
  stop: () => void
}

export function currentSemiSpaceBytes (): number {
  const spaces = getHeapSpaceStatistics()
  for (let i = 0; i < spaces.length; i++) {
    const s = spaces[i]
    // new_space's size is both semi-spaces.
    if (s !== undefined && s.space_name === 'new_space') return s.space_size / 2
  }
  return 0
}

// Exported for the test, which checks the flag's effect in a plain child process.
export const PRETENURING_OFF_FLAG = '--no-allocation-site-pretenuring'

export function disableAllocationSitePretenuring (): void {
  setFlagsFromString(PRETENURING_OFF_FLAG)
}

function setGrowthFactor (factor: number): void {
  setFlagsFromString(`--semi-space-growth-factor=${factor}`)
}

// semiSpaceMib 0 = leave V8's sizing alone (returns undefined).
export function capYoungGeneration (semiSpaceMib: number, logger: Logger): YoungGenerationCap | undefined {
  if (semiSpaceMib <= 0) return undefined
  const capBytes = Math.min(semiSpaceMib, V8_MAX_SEMI_SPACE_MIB / 2) * MIB
  let frozen = false
  let stopped = false

  function check (): void {
    if (stopped) return
    const size = currentSemiSpaceBytes()
    if (size >= capBytes) {
      if (!frozen) { setGrowthFactor(1); frozen = true }
    } else if (frozen) {
      setGrowthFactor(DEFAULT_GROWTH_FACTOR)
      frozen = false
    }
  }

  const observer = new PerformanceObserver(check)
  observer.observe({ entryTypes: ['gc'] })
  check()
  logger.debug({ semiSpaceMib, capBytes, semiSpaceBytes: currentSemiSpaceBytes() }, 'young generation capped')

  return {
    semiSpaceCapBytes: capBytes,
    get frozen () { return frozen },
    semiSpaceBytes: currentSemiSpaceBytes,
    check,
    stop () {
      if (stopped) return
      stopped = true
      observer.disconnect()
      if (frozen) { setGrowthFactor(DEFAULT_GROWTH_FACTOR); frozen = false }
    }
  }
}
