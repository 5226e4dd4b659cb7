import { UNIT_FIELDS } from '../src/plan/build-schedule.js';
import { HEADER_FIELDS, type PackedSchedule } from '../src/plan/pack-schedule.js';

/** Inputs of {@link emulateSchedule}: host arrays laid out as the device holds them. */
export interface EmulationInputs {
  /** `[numQueries, numHeads, headDim]`. */
  readonly q: Float32Array;
  /** `[numSlots, numKvHeads, headDim]`. */
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly scale: number;
}

/** A packed schedule's header fields, int arrays at their offsets, and its attention shape. */
export function readPacked(packed: PackedSchedule) {
  const { header, bytes } = packed;
  const field = (name: keyof typeof HEADER_FIELDS): number => header[HEADER_FIELDS[name]]!;
  const ints = (offsetField: keyof typeof HEADER_FIELDS, count: number): Int32Array =>
    new Int32Array(bytes.buffer, bytes.byteOffset + field(offsetField), count);
  const numHeads = field('numHeads');
  const numKvHeads = field('numKvHeads');
  return {
    bytes,
    field,
    ints,
    numQueries: field('numQueries'),
    numHeads,
    numKvHeads,
    headDim: field('headDim'),
    group: numHeads / numKvHeads,
  };
}

/**
 * Runs a packed schedule on the CPU exactly as the kernels interpret it (units, execution chunks,
 * masks, direct outputs, partial states in base 2 and the CSR merge), in float64. It reads only the
 * packed header and bytes, so it checks the packing and the schedule without a GPU.
 *
 * @returns `[numQueries, numHeads, headDim]`.
 */
export function emulateSchedule(packed: PackedSchedule, inputs: EmulationInputs): Float32Array {
  const { bytes, field, ints, numQueries, numHeads, numKvHeads, headDim, group } = readPacked(packed);
  const numUnits = field('numUnits');
  const numPartials = field('numExecPartials');
  const tokenSlots = ints('offsetTokenSlots', field('numTokens'));
  const tokenSegments = ints('offsetTokenSegments', field('numTokens'));
  const mask = new Uint32Array(bytes.buffer, bytes.byteOffset + field('offsetMask'), field('maskWords'));
  const units = ints('offsetUnits', numUnits * UNIT_FIELDS);
  const queryPartialIndptr = ints('offsetQueryPartialIndptr', numQueries + 1);
  const queryPartials = ints('offsetQueryPartials', numPartials);
  const emptyQueries = ints('offsetEmptyQueries', field('numEmptyQueries'));
  const chunkQueries = ints('offsetChunkQueries', field('numChunkQueries'));

  const out = new Float32Array(numQueries * numHeads * headDim).fill(Number.NaN);
  const partialO = new Float64Array(numPartials * numHeads * headDim).fill(Number.NaN);
  const partialLse = new Float64Array(numPartials * numHeads).fill(Number.NaN);
  const rowValues = new Float64Array(headDim);
  const log2e = Math.LOG2E;

  for (let unit = 0; unit < numUnits; unit++) {
    const [
      tokenStart,
      numTokens,
      queryStart,
      chunkQueryCount,
      partialStart,
      maskOffset,
      fullyVisible,
      rowStart,
      rowCount,
    ] = units.subarray(unit * UNIT_FIELDS, unit * UNIT_FIELDS + 9);
    const maskWords = Math.ceil(chunkQueryCount! / 32);
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      for (let row = rowStart!; row < rowStart! + rowCount!; row++) {
        const queryInChunk = Math.floor(row / group);
        const head = kvHead * group + (row % group);
        const query = chunkQueries[queryStart! + queryInChunk]!;
        let best = Number.NEGATIVE_INFINITY;
        let sum = 0;
        rowValues.fill(0);
        for (let token = 0; token < numTokens!; token++) {
          if (fullyVisible !== 1) {
            const segment = tokenSegments[tokenStart! + token]!;
            const word = mask[maskOffset! + segment * maskWords + (queryInChunk >> 5)]!;
            if (((word >>> (queryInChunk & 31)) & 1) === 0) continue;
          }
          const slot = tokenSlots[tokenStart! + token]!;
          const keyBase = (slot * numKvHeads + kvHead) * headDim;
          const queryBase = (query * numHeads + head) * headDim;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += inputs.q[queryBase + d]! * inputs.k[keyBase + d]!;
          const score = dot * inputs.scale * log2e;
          const newBest = Math.max(best, score);
          const correction = best === Number.NEGATIVE_INFINITY ? 0 : 2 ** (best - newBest);
          const weight = 2 ** (score - newBest);
          sum = sum * correction + weight;
          for (let d = 0; d < headDim; d++)
            rowValues[d] = rowValues[d]! * correction + weight * inputs.v[keyBase + d]!;
          best = newBest;
        }
        const direct = queryPartialIndptr[query + 1]! - queryPartialIndptr[query]! === 1;
        const target = direct
          ? { values: out, offset: (query * numHeads + head) * headDim }
          : { values: partialO, offset: ((partialStart! + queryInChunk) * numHeads + head) * headDim };
        for (let d = 0; d < headDim; d++)
          target.values[target.offset + d] = sum > 0 ? rowValues[d]! / sum : 0;
        if (!direct) {
          partialLse[(partialStart! + queryInChunk) * numHeads + head] =
            sum > 0 ? best + Math.log2(sum) : Number.NEGATIVE_INFINITY;
        }
      }
    }
  }
  for (let query = 0; query < numQueries; query++) {
    const first = queryPartialIndptr[query]!;
    const last = queryPartialIndptr[query + 1]!;
    if (last - first < 2) continue;
    for (let head = 0; head < numHeads; head++) {
      let best = Number.NEGATIVE_INFINITY;
      for (let entry = first; entry < last; entry++) {
        best = Math.max(best, partialLse[queryPartials[entry]! * numHeads + head]!);
      }
      for (let d = 0; d < headDim; d++) {
        let total = 0;
        let value = 0;
        if (best !== Number.NEGATIVE_INFINITY) {
          for (let entry = first; entry < last; entry++) {
            const slot = queryPartials[entry]!;
            const weight = 2 ** (partialLse[slot * numHeads + head]! - best);
            total += weight;
            value += weight * partialO[(slot * numHeads + head) * headDim + d]!;
          }
        }
        out[(query * numHeads + head) * headDim + d] = total > 0 ? value / total : 0;
      }
    }
  }
  for (const query of emptyQueries) out.fill(0, query * numHeads * headDim, (query + 1) * numHeads * headDim);
  return out;
}
