/**
 * Finds stop strings in streamed text. Text that might be the start of a stop string is held back until
 * the next piece shows whether it is, so nothing past a stop string is ever sent.
 *
 * @example
 * ```ts
 * const matcher = new StopMatcher(['\nUser:']);
 * matcher.push('Hello\nUs'); // { text: 'Hello', stopped: false }
 * matcher.push('er: hi');    // { text: '', stopped: true }
 * ```
 */
export class StopMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private isStopped = false;

  constructor(stops: readonly string[]) {
    this.stops = stops;
  }

  /** True once a stop string was found. */
  get stopped(): boolean {
    return this.isStopped;
  }

  /** Adds text; returns what may be sent now and whether a stop string ended the text. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.isStopped) return { text: '', stopped: true };
    const buffer = this.held + text;
    let cut = -1;
    for (const stop of this.stops) {
      const at = buffer.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.isStopped = true;
      this.held = '';
      return { text: buffer.slice(0, cut), stopped: true };
    }
    let keep = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, buffer.length); length > keep; length--) {
        if (buffer.endsWith(stop.slice(0, length))) {
          keep = length;
          break;
        }
      }
    }
    this.held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep), stopped: false };
  }

  /** The text held back, at the end of a sequence that did not stop on a stop string. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return this.isStopped ? '' : rest;
  }
}
