// Pacing of the bridge: a token-bucket rate cap for draining a backlog, and reconnect backoff.

// Two token buckets (messages and bytes per second), each holding at most one second of
// tokens, so a drain after an outage starts with at most a one-second burst. A batch is sent
// while both have tokens left and may take them below zero; the deficit delays the next one.
export class RateCap {
  private msgTokens: number
  private byteTokens: number
  private last: number

  constructor (private readonly msgsPerSec: number, private readonly bytesPerSec: number, private readonly now: () => number) {
    this.msgTokens = msgsPerSec
    this.byteTokens = bytesPerSec
    this.last = now()
  }

  get unlimited (): boolean { return this.msgsPerSec === 0 && this.bytesPerSec === 0 }

  private refill (): void {
    const t = this.now()
    const dt = (t - this.last) / 1000
    this.last = t
    if (this.msgsPerSec > 0) this.msgTokens = Math.min(this.msgsPerSec, this.msgTokens + dt * this.msgsPerSec)
    if (this.bytesPerSec > 0) this.byteTokens = Math.min(this.bytesPerSec, this.byteTokens + dt * this.bytesPerSec)
  }

  // 0 when a batch may go now, else the ms to wait.
  delayMs (): number {
    if (this.unlimited) return 0
    this.refill()
    let wait = 0
    if (this.msgsPerSec > 0 && this.msgTokens <= 0) wait = Math.max(wait, (-this.msgTokens + 1) / this.msgsPerSec * 1000)
    if (this.bytesPerSec > 0 && this.byteTokens <= 0) wait = Math.max(wait, (-this.byteTokens + 1) / this.bytesPerSec * 1000)
    return Math.ceil(wait)
  }

  // The most messages/bytes a batch may hold now (so one batch cannot blow far past the cap).
  budget (maxMsgs: number, maxBytes: number): [number, number] {
    if (this.unlimited) return [maxMsgs, maxBytes]
    const m = this.msgsPerSec > 0 ? Math.max(1, Math.min(maxMsgs, Math.floor(this.msgTokens))) : maxMsgs
    const b = this.bytesPerSec > 0 ? Math.max(1, Math.min(maxBytes, Math.floor(this.byteTokens))) : maxBytes
    return [m, b]
  }

  consume (msgs: number, bytes: number): void {
    if (this.msgsPerSec > 0) this.msgTokens -= msgs
    if (this.bytesPerSec > 0) this.byteTokens -= bytes
  }
}

// Exponential backoff with "equal jitter": half the delay fixed, half random, so a thousand edges
// losing the same cloud do not all come back in the same millisecond.
export function backoffMs (attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30))
  return Math.round(exp / 2 + random() * exp / 2)
}
