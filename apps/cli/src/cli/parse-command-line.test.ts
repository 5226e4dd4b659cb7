import { describe, expect, it } from 'vitest';
import { integerOption, parseCommandLine } from './parse-command-line.js';

const options = {
  'max-tokens': { type: 'string', short: 'n' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

describe('parseCommandLine', () => {
  it('takes a negative number as the value of a string option, so its range check can speak', () => {
    for (const argv of [['-n', '-5'], ['--max-tokens', '-5'], ['--max-tokens=-5']]) {
      const { values } = parseCommandLine('generate', argv, options);
      expect(values['max-tokens']).toBe('-5');
      expect(() => integerOption(values, 'max-tokens', 1)).toThrow(
        "--max-tokens must be an integer >= 1, got '-5'",
      );
    }
  });

  it('still refuses an unknown option after a boolean one', () => {
    expect(() => parseCommandLine('generate', ['-q', '-5'], options)).toThrow(/unknown option '-5'/);
  });
});
