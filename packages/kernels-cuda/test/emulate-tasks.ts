import { TASK_FIELDS, TASK_ROW_FIELDS } from '../src/plan/build-tasks.js';
import type { PackedSchedule } from '../src/plan/pack-schedule.js';
import { type EmulationInputs, readPacked } from './emulate-schedule.js';

/** Online-softmax state of one row in float64, base 2: `sum = Σ 2^(s - best)`, `values = Σ 2^(s - best) v`. */
interface RowState {
  best: number;
  sum: number;
  readonly values: Float64Array;
}

function attend(state: RowState, score: number, v: Float32Array, valueBase: number): void {
  const newBest = Math.max(state.best, score);
  const correction = state.best === Number.NEGATIVE_INFINITY ? 0 : 2 ** (state.best - newBest);
  const weight = 2 ** (score - newBest);
  state.sum = state.sum * correction + weight;
  for (let d = 0; d < state.values.length; d++) {
    state.values[d] = state.values[d]! * correction + weight * v[valueBase + d]!;
  }
  state.best = newBest;
}

/**
 * Runs a packed task schedule (executor 1) on the CPU exactly as the kernels interpret it: every
 * task row attends to every token of its task (no mask), writes the output directly or a partial
 * state (o normalised, lse base 2), and the merge kernel's part computes each merge query's suffix
 * tokens and merges its partials in CSR order. Float64. Reads only the packed header and bytes.
 *
 * @returns `[numQueries, numHeads, headDim]`; elements nothing wrote stay NaN.
 */
export function emulateTaskSchedule(packed: PackedSchedule, inputs: EmulationInputs): Float32Array {
  const { field, ints, numQueries, numHeads, numKvHeads, headDim, group } = readPacked(packed);
  const numTasks = field('numTasks');
  const numPartials = field('numExecPartials');
  const tasks = ints('offsetTasks', numTasks * TASK_FIELDS);
  const taskSlots = ints('offsetTaskSlots', field('numTaskSlots'));
  const taskRows = ints('offsetTaskRows', field('numTaskRows') * TASK_ROW_FIELDS);
  const queryPartialIndptr = ints('offsetQueryPartialIndptr', numQueries + 1);
  const queryPartials = ints('offsetQueryPartials', numPartials);
  const suffixIndptr = ints('offsetSuffixIndptr', numQueries + 1);
  const suffixSlots = ints('offsetSuffixSlots', field('numSuffixSlots'));
  const mergeQueries = ints('offsetMergeQueries', field('numMergeQueries'));
  const scaleLog2 = inputs.scale * Math.LOG2E;

  const out = new Float32Array(numQueries * numHeads * headDim).fill(Number.NaN);
  const partialO = new Float64Array(numPartials * numHeads * headDim).fill(Number.NaN);
  const partialLse = new Float64Array(numPartials * numHeads).fill(Number.NaN);
  const score = (qBase: number, slot: number, kvHead: number): number => {
    const keyBase = (slot * numKvHeads + kvHead) * headDim;
    let dot = 0;
    for (let d = 0; d < headDim; d++) dot += inputs.q[qBase + d]! * inputs.k[keyBase + d]!;
    return dot * scaleLog2;
  };

  for (let task = 0; task < numTasks; task++) {
    const [slotStart, numTokens, rowStart, rowCount] = tasks.subarray(
      task * TASK_FIELDS,
      (task + 1) * TASK_FIELDS,
    ) as unknown as [number, number, number, number];
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      for (let row = rowStart; row < rowStart + rowCount; row++) {
        const qRow = taskRows[row * TASK_ROW_FIELDS]! + kvHead * group;
        const partialEntry = taskRows[row * TASK_ROW_FIELDS + 1]!;
        const state: RowState = { best: Number.NEGATIVE_INFINITY, sum: 0, values: new Float64Array(headDim) };
        for (let token = 0; token < numTokens; token++) {
          const slot = taskSlots[slotStart + token]!;
          attend(
            state,
            score(qRow * headDim, slot, kvHead),
            inputs.v,
            (slot * numKvHeads + kvHead) * headDim,
          );
        }
        const inverse = state.sum > 0 ? 1 / state.sum : 0;
        if (partialEntry < 0) {
          for (let d = 0; d < headDim; d++) out[qRow * headDim + d] = state.values[d]! * inverse;
        } else {
          const partialRow = partialEntry + kvHead * group;
          for (let d = 0; d < headDim; d++) partialO[partialRow * headDim + d] = state.values[d]! * inverse;
          partialLse[partialRow] =
            state.sum > 0 ? state.best + Math.log2(state.sum) : Number.NEGATIVE_INFINITY;
        }
      }
    }
  }

  for (const query of mergeQueries) {
    for (let head = 0; head < numHeads; head++) {
      const kvHead = Math.floor(head / group);
      const qRow = query * numHeads + head;
      const state: RowState = { best: Number.NEGATIVE_INFINITY, sum: 0, values: new Float64Array(headDim) };
      for (let entry = suffixIndptr[query]!; entry < suffixIndptr[query + 1]!; entry++) {
        const slot = suffixSlots[entry]!;
        attend(state, score(qRow * headDim, slot, kvHead), inputs.v, (slot * numKvHeads + kvHead) * headDim);
      }
      for (let entry = queryPartialIndptr[query]!; entry < queryPartialIndptr[query + 1]!; entry++) {
        const partialRow = queryPartials[entry]! * numHeads + head;
        const lse = partialLse[partialRow]!;
        // Empty-state guard: a partial that saw no key contributes nothing.
        if (lse === Number.NEGATIVE_INFINITY) continue;
        const newBest = Math.max(state.best, lse);
        const correction = state.best === Number.NEGATIVE_INFINITY ? 0 : 2 ** (state.best - newBest);
        const weight = 2 ** (lse - newBest);
        state.sum = state.sum * correction + weight;
        for (let d = 0; d < headDim; d++) {
          state.values[d] = state.values[d]! * correction + weight * partialO[partialRow * headDim + d]!;
        }
        state.best = newBest;
      }
      const inverse = state.sum > 0 ? 1 / state.sum : 0;
      for (let d = 0; d < headDim; d++) out[qRow * headDim + d] = state.values[d]! * inverse;
    }
  }
  return out;
}
