// CRC-32 (IEEE, the polynomial of zlib.crc32) over a byte range.
// zlib.crc32 costs ~150 ns per call before it reads a byte (a native call and argument checks),
// plus ~100 ns more when a range of a larger buffer needs a subarray object; a slicing-by-8 table
// loop in JS costs ~0.9 ns per byte. Measured here (CPU time, median, Node 20): 128 B: JS 129 ns,
// zlib 149 ns; 256 B: JS 234, zlib 178; 1 KiB: zlib 362 ns direct, 474 ns with a subarray.
// Both give identical values (unit-tested).
import { crc32 as zlibCrc32 } from 'node:zlib'

// Ranges up to this size use the JS loop (crc32Range, reads and recovery).
const SMALL_BYTES = 256
// The append path (recordCrc): payloads from this size on go to zlib.crc32 directly (no
// subarray: the payload is its own Buffer), continuing from the JS CRC of the header part.
const ZLIB_PAYLOAD_BYTES = 192
const T = new Int32Array(8 * 256)
for (let n = 0; n < 256; n++) {
  let c = n
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  T[n] = c
}
for (let n = 0; n < 256; n++) {
  for (let t = 1; t < 8; t++) {
    const prev = T[(t - 1) * 256 + n] as number
    T[t * 256 + n] = (prev >>> 8) ^ (T[prev & 0xff] as number)
  }
}

export function crc32Js (b: Uint8Array, start: number, end: number): number {
  let c = -1
  let i = start
  for (; i + 8 <= end; i += 8) {
    const a = c ^ ((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24))
    c = (T[1792 + (a & 0xff)] as number) ^ (T[1536 + ((a >>> 8) & 0xff)] as number) ^
      (T[1280 + ((a >>> 16) & 0xff)] as number) ^ (T[1024 + (a >>> 24)] as number) ^
      (T[768 + (b[i + 4] as number)] as number) ^ (T[512 + (b[i + 5] as number)] as number) ^
      (T[256 + (b[i + 6] as number)] as number) ^ (T[b[i + 7] as number] as number)
  }
  for (; i < end; i++) c = (T[(c ^ (b[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return (c ^ -1) >>> 0
}

export function crc32Range (b: Buffer, start: number, end: number): number {
  return end - start <= SMALL_BYTES ? crc32Js(b, start, end) : zlibCrc32(b.subarray(start, end))
}

// CRC of a record being encoded: bytes [start, payloadStart) of `b` (header fields, topic,
// client id), then `payload`, which the caller has just copied to `b` at payloadStart. zlib.crc32
// continues from a previous CRC value, so the payload is read where it already is.
export function recordCrc (b: Buffer, start: number, payloadStart: number, payload: Buffer): number {
  if (payload.length < ZLIB_PAYLOAD_BYTES) return crc32Js(b, start, payloadStart + payload.length)
  return zlibCrc32(payload, crc32Js(b, start, payloadStart))
}
