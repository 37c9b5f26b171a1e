import { gaussian, type Rng } from './random.js'

// Sensor readings with realistic behaviour: each quantity follows a slow random walk (drift)
// pulled back toward its nominal value (mean reversion, so it never wanders off forever), plus
// per-reading measurement noise, rounded to the sensor's resolution.
interface Quantity { name: string, nominal: number, drift: number, noise: number, resolution: number, min: number, max: number }

export const QUANTITIES: Readonly<Record<string, Quantity>> = {
  temperature: { name: 'temperature', nominal: 21, drift: 0.05, noise: 0.1, resolution: 0.01, min: -40, max: 85 },
  humidity: { name: 'humidity', nominal: 55, drift: 0.2, noise: 0.5, resolution: 0.1, min: 0, max: 100 },
  pressure: { name: 'pressure', nominal: 1013, drift: 0.05, noise: 0.2, resolution: 0.1, min: 300, max: 1100 },
  co2: { name: 'co2', nominal: 600, drift: 2, noise: 5, resolution: 1, min: 400, max: 5000 },
  battery: { name: 'battery', nominal: 3.7, drift: 0.001, noise: 0.005, resolution: 0.001, min: 3, max: 4.2 },
  vibration: { name: 'vibration', nominal: 0.2, drift: 0.01, noise: 0.05, resolution: 0.001, min: 0, max: 10 }
}

export const DEFAULT_SENSORS = ['temperature', 'humidity'] as const

export class SensorState {
  private readonly quantities: Quantity[]
  private readonly values: number[]
  private readonly readings: Record<string, number> = {}

  constructor (names: readonly string[], private readonly rng: Rng) {
    this.quantities = names.map((n) => QUANTITIES[n])
    // Each device starts somewhere around nominal, like real units differ.
    this.values = this.quantities.map((q) => q.nominal + gaussian(rng) * q.noise * 10)
  }

  // Advances one step and returns the readings (the same object each time).
  read (): Readonly<Record<string, number>> {
    for (let i = 0; i < this.quantities.length; i++) {
      const q = this.quantities[i]
      let v = this.values[i]
      v += gaussian(this.rng) * q.drift + (q.nominal - v) * 0.01
      v = Math.min(q.max, Math.max(q.min, v))
      this.values[i] = v
      const noisy = Math.min(q.max, Math.max(q.min, v + gaussian(this.rng) * q.noise))
      // Divide by the inverse so 2133 * 0.01 does not print as 21.330000000000002.
      this.readings[q.name] = Math.round(noisy / q.resolution) / Math.round(1 / q.resolution)
    }
    return this.readings
  }

  // Commands move a quantity (an actuator: heater on, fan speed...).
  nudge (name: string, delta: number): void {
    const i = this.quantities.findIndex((q) => q.name === name)
    if (i >= 0) this.values[i] += delta
  }
}
