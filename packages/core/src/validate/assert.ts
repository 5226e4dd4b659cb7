import { InvalidArgumentError } from '../errors/invalid-argument-error.js';

/** Throws `InvalidArgumentError` unless `value` is an integer `>= minimum`. Returns the value. */
export function assertInteger(argument: string, value: unknown, minimum = 0): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new InvalidArgumentError(
      `${argument} must be an integer >= ${minimum}, got ${describeValue(value)}`,
      { argument, expected: `integer >= ${minimum}`, actual: value },
    );
  }
  return value;
}

/** Throws `InvalidArgumentError` unless `value` is a finite number. */
export function assertFinite(argument: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${argument} must be a finite number, got ${describeValue(value)}`, {
      argument,
      expected: 'finite number',
      actual: value,
    });
  }
  return value;
}

/** A short, safe rendering of a value for error messages. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return `a ${typeof value}`;
}
