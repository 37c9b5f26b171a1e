import type { Rng } from './random.js'

// Reconnect delay like real firmware: exponential growth from minMs, capped at maxMs, with
// "equal jitter" (half fixed, half random) so a fleet that lost its broker at once does not
// come back in lockstep, yet no device retries immediately.
export function backoffDelayMs (attempt: number, minMs: number, maxMs: number, rng: Rng): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30))
  return ceiling / 2 + rng() * ceiling / 2
}
