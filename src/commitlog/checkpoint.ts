// The checkpoint: a 36-byte file at fixed byte offsets, rewritten in place.
//
//   0  magic            u32 LE  CHECKPOINT_MAGIC
//   4  version          u32 LE  1
//   8  durableOffset    u64 LE  everything below is fsynced in the segments
//  16  indexedOffset    u64 LE  topic and time index entries exist for every record below
//  24  writtenAtMs      u64 LE  wall clock when written (for operators)
//  32  crc32            u32 LE  over bytes [0, 32)
//
// A torn or missing checkpoint is not an error: recovery then scans from the oldest segment.
import { closeSync, constants, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs'
import { crc32 } from 'node:zlib'
import { readU48, writeU48 } from './format.js'

export const CHECKPOINT_MAGIC = 0x50434254 // "TBCP"
export const CHECKPOINT_BYTES = 36

export interface Checkpoint {
  durableOffset: number
  indexedOffset: number
  writtenAtMs: number
}

export function encodeCheckpoint (cp: Checkpoint): Buffer {
  const buf = Buffer.alloc(CHECKPOINT_BYTES)
  buf.writeUInt32LE(CHECKPOINT_MAGIC, 0)
  buf.writeUInt32LE(1, 4)
  writeU48(buf, cp.durableOffset, 8)
  writeU48(buf, cp.indexedOffset, 16)
  writeU48(buf, cp.writtenAtMs, 24)
  buf.writeUInt32LE(crc32(buf.subarray(0, 32)), 32)
  return buf
}

export function decodeCheckpoint (buf: Buffer): Checkpoint | null {
  if (buf.length < CHECKPOINT_BYTES) return null
  if (buf.readUInt32LE(0) !== CHECKPOINT_MAGIC || buf.readUInt32LE(4) !== 1) return null
  if (buf.readUInt32LE(32) !== crc32(buf.subarray(0, 32))) return null
  return { durableOffset: readU48(buf, 8), indexedOffset: readU48(buf, 16), writtenAtMs: readU48(buf, 24) }
}

export function readCheckpoint (path: string): Checkpoint | null {
  try {
    return decodeCheckpoint(readFileSync(path))
  } catch {
    return null
  }
}

// Written in place at offset 0 (36 bytes fit one sector; the CRC catches a torn write).
export function writeCheckpoint (path: string, cp: Checkpoint, sync: boolean): void {
  // O_CREAT without O_TRUNC: overwrite the same bytes, never pass through an empty file.
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o644)
  try {
    writeSync(fd, encodeCheckpoint(cp), 0, CHECKPOINT_BYTES, 0)
    if (sync) fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
