/**
 * How KV elements are stored in a `GPUBuffer` and read by the shaders:
 * - `f32`: one f32 per element;
 * - `f16-packed`: IEEE binary16 pairs packed in `u32` (element `2i` in the low half), read with
 *   `unpack2x16float`: the path for adapters without `shader-f16` (the NVIDIA GPUs through Dawn/Vulkan);
 * - `f16-native`: the same bytes read as `f16` (`enable f16;`), when the device has `shader-f16`.
 *
 * All three compute in f32. The byte layout of `f16-packed` and `f16-native` is identical.
 */
export type KVFormat = 'f32' | 'f16-packed' | 'f16-native';

/** WGSL pieces for one {@link KVFormat}: a *unit* is 4 consecutive elements of a head row. */
export interface KVFormatWgsl {
  /** `enable` directives the format needs (empty or `enable f16;`). */
  readonly enable: string;
  /** WGSL type of one unit of 4 elements. */
  readonly unitType: string;
  /** Bytes of one unit (8 or 16). */
  readonly unitBytes: 8 | 16;
  /** Function declarations `unitToF32(unit) -> vec4<f32>` and `unitFromF32(vec4<f32>) -> unit`. */
  readonly functions: string;
}

/** The WGSL declarations for a KV format. */
export function kvFormatWgsl(format: KVFormat): KVFormatWgsl {
  switch (format) {
    case 'f32':
      return {
        enable: '',
        unitType: 'vec4<f32>',
        unitBytes: 16,
        functions: [
          'fn unitToF32(unit: vec4<f32>) -> vec4<f32> { return unit; }',
          'fn unitFromF32(value: vec4<f32>) -> vec4<f32> { return value; }',
        ].join('\n'),
      };
    case 'f16-packed':
      return {
        enable: '',
        unitType: 'vec2<u32>',
        unitBytes: 8,
        functions: [
          '// Elements (4i, 4i+1) are in unit.x, (4i+2, 4i+3) in unit.y; the low half holds the even element.',
          'fn unitToF32(unit: vec2<u32>) -> vec4<f32> {',
          '  return vec4<f32>(unpack2x16float(unit.x), unpack2x16float(unit.y));',
          '}',
          'fn unitFromF32(value: vec4<f32>) -> vec2<u32> {',
          '  return vec2<u32>(pack2x16float(value.xy), pack2x16float(value.zw));',
          '}',
        ].join('\n'),
      };
    case 'f16-native':
      return {
        enable: 'enable f16;',
        unitType: 'vec4<f16>',
        unitBytes: 8,
        functions: [
          'fn unitToF32(unit: vec4<f16>) -> vec4<f32> { return vec4<f32>(unit); }',
          'fn unitFromF32(value: vec4<f32>) -> vec4<f16> { return vec4<f16>(value); }',
        ].join('\n'),
      };
  }
}
