// Accounting header carried by every simulated message, so a checker anywhere (at the broker or
// at the cloud end of a bridge, whatever the topic became) can tell who sent it, in which order
// and when. Two encodings, told apart by the first byte:
//
//   binary (24 bytes, big endian, then filler up to the payload size):
//     0  u8   magic 0xB7 (never '{')
//     1  u8   version 1
//     2  u16  reserved (0)
//     4  u32  run id      (messages of other runs are counted as foreign, never as ours)
//     8  u32  device index
//     12 u32  sequence number (1, 2, 3, ... per device and run)
//     16 f64  send time, ms since the epoch with sub-ms precision
//
//   JSON: {"run":R,"dev":N,"seq":S,"ts":T, ...sensor readings}
//
// Decoding writes into a caller-owned object so the hot path allocates nothing for binary.

export const BINARY_MAGIC = 0xb7
export const HEADER_BYTES = 24
export const OFFSET_RUN = 4
export const OFFSET_DEVICE = 8
export const OFFSET_SEQ = 12
export const OFFSET_SENT_AT = 16

export interface Stamp {
  run: number
  device: number
  seq: number
  sentAtMs: number
}

const origin = performance.timeOrigin
// Wall-clock milliseconds with sub-millisecond resolution; comparable across processes on one host.
export function nowMs (): number {
  return origin + performance.now()
}

export function writeBinaryHeader (buf: Buffer, at: number, run: number, device: number, seq: number, sentAtMs: number): void {
  buf[at] = BINARY_MAGIC
  buf[at + 1] = 1
  buf[at + 2] = 0
  buf[at + 3] = 0
  buf.writeUInt32BE(run, at + OFFSET_RUN)
  buf.writeUInt32BE(device, at + OFFSET_DEVICE)
  buf.writeUInt32BE(seq, at + OFFSET_SEQ)
  buf.writeDoubleBE(sentAtMs, at + OFFSET_SENT_AT)
}

export function encodeBinary (size: number, run: number, device: number, seq: number, sentAtMs: number): Buffer {
  const buf = Buffer.alloc(Math.max(size, HEADER_BYTES))
  writeBinaryHeader(buf, 0, run, device, seq, sentAtMs)
  return buf
}

export function encodeJson (run: number, device: number, seq: number, sentAtMs: number, readings: Readonly<Record<string, number>>): Buffer {
  return Buffer.from(JSON.stringify({ run, dev: device, seq, ts: sentAtMs, ...readings }))
}

// Reads the header of a payload at buf[start, end). Returns false when the payload is not one of
// ours (wrong magic, too short, JSON without the fields).
export function decodeStamp (buf: Buffer, start: number, end: number, out: Stamp): boolean {
  if (end - start >= HEADER_BYTES && buf[start] === BINARY_MAGIC && buf[start + 1] === 1) {
    out.run = buf.readUInt32BE(start + OFFSET_RUN)
    out.device = buf.readUInt32BE(start + OFFSET_DEVICE)
    out.seq = buf.readUInt32BE(start + OFFSET_SEQ)
    out.sentAtMs = buf.readDoubleBE(start + OFFSET_SENT_AT)
    return true
  }
  if (end > start && buf[start] === 0x7b) {
    let doc: unknown
    try { doc = JSON.parse(buf.toString('utf8', start, end)) } catch { return false }
    const d = doc as Partial<Record<'run' | 'dev' | 'seq' | 'ts', unknown>>
    if (typeof d.run !== 'number' || typeof d.dev !== 'number' || typeof d.seq !== 'number' || typeof d.ts !== 'number') return false
    out.run = d.run
    out.device = d.dev
    out.seq = d.seq
    out.sentAtMs = d.ts
    return true
  }
  return false
}
