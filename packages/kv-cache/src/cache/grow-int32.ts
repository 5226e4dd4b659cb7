/**
 * Returns an `Int32Array` of at least `minimumLength` elements holding `array`'s values (the same array if it is
 * long enough). Growth doubles; new elements are set to `fill`.
 */
export function growInt32(
  array: Int32Array<ArrayBuffer>,
  minimumLength: number,
  fill = 0,
): Int32Array<ArrayBuffer> {
  if (array.length >= minimumLength) return array;
  let length = Math.max(16, array.length);
  while (length < minimumLength) length *= 2;
  const grown = new Int32Array(length);
  grown.set(array);
  if (fill !== 0) grown.fill(fill, array.length);
  return grown;
}
