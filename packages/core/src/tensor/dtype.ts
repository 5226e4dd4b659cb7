/** Element types of tensors and KV storage. `f16` is IEEE binary16. */
export type DType = 'f32' | 'f16';

/** Every supported dtype, in a stable order. */
export const DTYPES: readonly DType[] = ['f32', 'f16'];

/** Bytes per element of a dtype. */
export function dtypeBytes(dtype: DType): 2 | 4 {
  return dtype === 'f16' ? 2 : 4;
}

/** True if `value` names a supported dtype. */
export function isDType(value: unknown): value is DType {
  return value === 'f32' || value === 'f16';
}
