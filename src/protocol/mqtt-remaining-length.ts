// MQTT's Remaining Length: a variable byte integer of 1 to 4 bytes, 7 bits each, least significant
// group first, high bit = more bytes follow [MQTT-2.2.3]. Shared by the broker's packet encoder
// (src/mqtt/fast-encode.ts) and the simulator's codec (firmware-sim/mqtt/codec.ts).

// The largest value 4 bytes hold.
export const MAX_REMAINING_LENGTH = 268_435_455

export function remainingLengthBytes (n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

// Writes n at `at`; returns the offset after it.
export function writeRemainingLength (buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    buf[at++] = byte
  } while (n > 0)
  return at
}
