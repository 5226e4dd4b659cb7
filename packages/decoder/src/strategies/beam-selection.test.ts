import { describe, expect, it } from 'vitest';
import { beamHypothesisScore, selectBeams } from './beam-search.js';

describe('beam selection', () => {
  it('ranks extensions by summed log-probability, ties to the lower beam then token', () => {
    const beams = [
      { tokens: [1], logProbabilities: [-1], score: -1 },
      { tokens: [2], logProbabilities: [-1], score: -1 },
    ];
    const rows = [Float32Array.from([-0.5, -0.5, -3, -4]), Float32Array.from([-0.5, -2, -0.6, -4])];
    const { next, finished } = selectBeams(beams, rows, 2, new Set());
    expect(next.map(({ beam, token }) => [beam, token])).toEqual([
      [0, 0],
      [0, 1],
    ]);
    expect(finished).toEqual([]);
  });

  it('finishes stop tokens ranked within the width and drops the others', () => {
    const beams = [{ tokens: [], logProbabilities: [], score: 0 }];
    const row = Float32Array.from([-0.1, -1, -2, -3, -4]);
    const early = selectBeams(beams, [row], 2, new Set([0]));
    expect(early.finished.map((candidate) => candidate.token)).toEqual([0]);
    expect(early.next.map((candidate) => candidate.token)).toEqual([1, 2]);
    const late = selectBeams(beams, [row], 2, new Set([3]));
    expect(late.finished).toEqual([]);
    expect(late.next.map((candidate) => candidate.token)).toEqual([0, 1]);
    expect(beamHypothesisScore(-6, 4, 1)).toBe(-1.5);
    expect(beamHypothesisScore(-6, 4, 0)).toBe(-6);
  });
});
