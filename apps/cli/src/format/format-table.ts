/** A column of {@link formatTable}: its header and whether values align right (numbers). */
export interface TableColumn {
  readonly header: string;
  readonly align?: 'left' | 'right';
}

/**
 * Renders rows as a plain-text table with a header and a rule, columns separated by two spaces.
 *
 * @example
 * ```ts
 * formatTable([{ header: 'strategy' }, { header: 'chunks', align: 'right' }], [['sequence', '20']]);
 * ```
 */
export function formatTable(columns: readonly TableColumn[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((column, index) =>
    Math.max(textWidth(column.header), ...rows.map((row) => textWidth(row[index] ?? ''))),
  );
  const render = (cells: readonly string[]) =>
    columns
      .map((column, index) => {
        const cell = cells[index] ?? '';
        const padding = ' '.repeat(widths[index]! - textWidth(cell));
        return column.align === 'right' ? padding + cell : cell + padding;
      })
      .join('  ')
      .trimEnd();
  const lines = [
    render(columns.map((column) => column.header)),
    widths.map((width) => '-'.repeat(width)).join('  '),
  ];
  for (const row of rows) lines.push(render(row));
  return `${lines.join('\n')}\n`;
}

function textWidth(text: string): number {
  return [...text].length;
}
