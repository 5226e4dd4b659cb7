/** Columns the text output of `deft` fits: a normal terminal. */
export const OUTPUT_COLUMNS = 100;

/**
 * Wraps prose at word boundaries so no line is longer than `columns` (a word longer than that stays
 * whole on its own line); continuation lines start with `indent`.
 *
 * @example
 * ```ts
 * wrapText('note: a long sentence …', 100, '  ');
 * ```
 */
export function wrapText(text: string, columns: number = OUTPUT_COLUMNS, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((part) => part !== '')) {
    if (line !== '' && [...line].length + 1 + [...word].length > columns) {
      lines.push(line);
      line = indent + word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.join('\n');
}
