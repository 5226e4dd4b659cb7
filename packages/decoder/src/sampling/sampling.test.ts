import { InvalidArgumentError } from '@deft/core';
import { describe, expect, it } from 'vitest';
import { argmaxToken, chooseToken } from './choose-token.js';
import { resolveSampling } from './sampling-options.js';
import { SeededRandom } from './seeded-random.js';

const row = Float32Array.from([0.5, 0.3, 0.15, 0.05], Math.log);

describe('sampling', () => {
  it('seeded streams are reproducible, independent and in [0, 1)', () => {
    const draw = (seed: number, stream: number) =>
      Array.from(
        { length: 5 },
        (
          (random) => () =>
            random.next()
        )(new SeededRandom(seed, stream)),
      );
    expect(draw(1, 0)).toEqual(draw(1, 0));
    expect(draw(1, 0)).not.toEqual(draw(1, 1));
    expect(draw(1, 0)).not.toEqual(draw(2, 0));
    const random = new SeededRandom(9);
    for (let index = 0; index < 1000; index++) {
      const value = random.next();
      expect(value >= 0 && value < 1).toBe(true);
    }
  });

  it('greedy picks the argmax, the smaller id on ties', () => {
    expect(argmaxToken(Float32Array.from([1, 3, 3])).token).toBe(1);
    expect(chooseToken(row, resolveSampling(), new SeededRandom(0)).token).toBe(0);
  });

  it('samples in proportion to the probabilities, after temperature, top-k and top-p', () => {
    const count = (options: Parameters<typeof resolveSampling>[0]) => {
      const sampling = resolveSampling(options);
      const random = new SeededRandom(5);
      const counts = [0, 0, 0, 0];
      for (let index = 0; index < 20000; index++) counts[chooseToken(row, sampling, random).token]!++;
      return counts.map((value) => value / 20000);
    };
    const plain = count({ temperature: 1 });
    [0.5, 0.3, 0.15, 0.05].forEach((probability, index) => {
      expect(Math.abs(plain[index]! - probability)).toBeLessThan(0.015);
    });
    expect(count({ temperature: 1, topK: 2 })).toEqual(expect.arrayContaining([0, 0]));
    const topK = count({ temperature: 1, topK: 2 });
    expect(Math.abs(topK[0]! - 0.625)).toBeLessThan(0.015);
    const topP = count({ temperature: 1, topP: 0.8 }); // keeps 0.5 + 0.3
    expect(topP[2]).toBe(0);
    expect(topP[3]).toBe(0);
    const cold = count({ temperature: 0.25 });
    expect(cold[0]!).toBeGreaterThan(0.8);
  });

  it('rejects bad options', () => {
    expect(() => resolveSampling({ temperature: -1 })).toThrow(InvalidArgumentError);
    expect(() => resolveSampling({ topK: 1.5 })).toThrow(/topK/);
    expect(() => resolveSampling({ topP: 0 })).toThrow(/topP/);
    expect(() => resolveSampling({ seed: 0.5 })).toThrow(/seed/);
  });
});
