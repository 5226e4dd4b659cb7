import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from './run-settings.js';
import { readUrlRequest } from './url-params.js';

const page = (query: string) => readUrlRequest(new URL(`https://example.test/app/?${query}`));

describe('readUrlRequest', () => {
  it('reads the settings and resolves relative URLs against the page', () => {
    const request = page('model=/models/a.gguf&tokenizer=t.bin&strategy=tot&width=3&maxTokens=20&autorun=1');
    expect(request.problem).toBeUndefined();
    expect(request.modelUrl).toBe('https://example.test/models/a.gguf');
    expect(request.tokenizerUrl).toBe('https://example.test/app/t.bin');
    expect(request.settings).toEqual({ ...DEFAULT_SETTINGS, strategy: 'tot', width: 3, maxTokens: 20 });
    expect(request.autorun).toBe(true);
  });

  it('takes the defaults for missing or non-numeric parameters', () => {
    const request = page('width=abc');
    expect(request.problem).toBeUndefined();
    expect(request.settings).toEqual(DEFAULT_SETTINGS);
  });

  it.each([
    ['width=-2', 'width must be an integer >= 1, not -2'],
    ['width=1.5', 'width must be an integer >= 1, not 1.5'],
    ['maxTokens=0', 'maxTokens must be an integer >= 1, not 0'],
    ['temperature=-1', 'temperature must be a finite number >= 0, not -1'],
    ['seed=0.5', 'seed must be an integer, not 0.5'],
  ])('describes %s as a problem instead of passing it to the engine', (query, message) => {
    expect(page(query).problem).toBe(`bad page URL: ${message}`);
  });

  it('describes a malformed model URL as a problem instead of throwing', () => {
    const request = page(`model=${encodeURIComponent('http://[::1')}`);
    expect(request.modelUrl).toBeUndefined();
    expect(request.problem).toBe('bad page URL: model is not a URL: "http://[::1"');
  });
});
