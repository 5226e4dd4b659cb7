/** Bytes in decimal units with three significant digits: `512 B`, `1.23 kB`, `45.6 MB`, `2.10 GB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${significant(value)} ${units[unit]}`;
}

/** A duration given in microseconds: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`. */
export function formatMicroseconds(microseconds: number): string {
  if (!Number.isFinite(microseconds)) return String(microseconds);
  if (microseconds < 1) return `${significant(microseconds * 1000)} ns`;
  if (microseconds < 1000) return `${significant(microseconds)} µs`;
  if (microseconds < 1e6) return `${significant(microseconds / 1000)} ms`;
  return `${significant(microseconds / 1e6)} s`;
}

/** A ratio as `1.00×`, `0.123×`, `12.3×`. */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return '–';
  return `${significant(ratio)}×`;
}

/** A number with three significant digits and no exponent below 1e15. */
export function significant(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, 2 - magnitude);
  return value.toFixed(Math.min(decimals, 6));
}
