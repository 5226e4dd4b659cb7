import type { KeptSequence, ViewNode } from '../worker/worker-messages.js';

const SVG = 'http://www.w3.org/2000/svg';
const ROW_HEIGHT = 24;
/** About how wide a character of the 10 px labels is. */
const CHARACTER_WIDTH = 6;
const MARGIN = 12;

function element<Name extends keyof SVGElementTagNameMap>(
  name: Name,
  attributes: Record<string, string | number>,
): SVGElementTagNameMap[Name] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

interface Placed {
  readonly node: ViewNode;
  /** Start and end in tokens from the root's first token. */
  readonly start: number;
  readonly end: number;
  y: number;
}

/** Where each node goes: x in tokens along its path, y by the depth-first order of the leaves. */
function layout(nodes: readonly ViewNode[]): Placed[] {
  const children = new Map<number, ViewNode[]>();
  for (const node of nodes) {
    if (node.parent < 0) continue;
    children.set(node.parent, [...(children.get(node.parent) ?? []), node]);
  }
  const placed: Placed[] = [];
  let row = 0;
  const visit = (node: ViewNode, start: number): Placed => {
    const entry: Placed = { node, start, end: start + node.tokens.length, y: 0 };
    placed.push(entry);
    const below = (children.get(node.id) ?? []).map((child) => visit(child, entry.end));
    entry.y = below.length === 0 ? row++ : (below[0]!.y + below.at(-1)!.y) / 2;
    return entry;
  };
  const root = nodes[0];
  if (root !== undefined) visit(root, 0);
  return placed;
}

function describe(node: ViewNode): string {
  const lines = [
    `${node.state}${node.state === 'accepted' ? ` (${node.accepted} of ${node.tokens.length} draft tokens)` : ''}`,
    `text: ${JSON.stringify(node.text)}`,
    `tokens: ${node.tokens.join(' ')}`,
    `KV pages: ${node.pages}`,
  ];
  if (node.logProbabilities.some((value) => Number.isFinite(value))) {
    const values = node.logProbabilities.map((value) => (Number.isFinite(value) ? value.toFixed(2) : '?'));
    lines.push(`log-probs: ${values.join(' ')}`);
  }
  return lines.join('\n');
}

/**
 * Draws the token tree into `svg`: one horizontal bar per node (its tokens along x), live branches blue,
 * pruned ones grey, accepted draft tokens green and rejected ones red, the chosen sequence's path thick, and
 * a dot where each kept sequence ends (`data-kept`). Hovering a node shows its text, token ids, log-probs
 * (on kept paths) and KV pages.
 */
export function renderTree(
  svg: SVGSVGElement,
  nodes: readonly ViewNode[],
  kept: readonly KeptSequence[] = [],
): void {
  const placed = layout(nodes);
  const rows = Math.max(1, ...placed.map((entry) => entry.y + 1));
  const width = Math.max(320, svg.parentElement?.clientWidth ?? 800);
  const longest = Math.max(1, ...placed.map((entry) => entry.end));
  const unit = Math.min(40, (width - 2 * MARGIN) / longest);
  const height = rows * ROW_HEIGHT + 2 * MARGIN;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  const x = (tokens: number) => MARGIN + tokens * unit;
  const y = (row: number) => MARGIN + row * ROW_HEIGHT + ROW_HEIGHT / 2;
  const byId = new Map(placed.map((entry) => [entry.node.id, entry]));
  const chosen = new Set<number>();
  for (let id = kept[0]?.node ?? -1; id >= 0; id = byId.get(id)?.node.parent ?? -1) chosen.add(id);

  const groups = placed.map((entry) => {
    const { node } = entry;
    const group = element('g', {
      class: `node ${node.state}`,
      'data-node': node.id,
      'data-state': node.state,
    });
    if (chosen.has(node.id)) group.setAttribute('data-chosen', '');
    const parent = byId.get(node.parent);
    if (parent !== undefined) {
      group.append(
        element('path', {
          class: 'edge',
          d: `M${x(parent.end)},${y(parent.y)} L${x(entry.start)},${y(entry.y)}`,
        }),
      );
    }
    const split = node.state === 'accepted' ? entry.start + node.accepted : entry.end;
    group.append(
      element('line', { class: 'bar', x1: x(entry.start), x2: x(split), y1: y(entry.y), y2: y(entry.y) }),
    );
    if (split < entry.end) {
      group.append(
        element('line', {
          class: 'bar rejected',
          x1: x(split),
          x2: x(entry.end),
          y1: y(entry.y),
          y2: y(entry.y),
        }),
      );
    }
    const characters = Math.floor((x(entry.end) - x(entry.start)) / CHARACTER_WIDTH);
    if (characters >= 3 && node.text.trim() !== '') {
      const label = element('text', { class: 'label', x: x(entry.start), y: y(entry.y) - 5 });
      label.textContent =
        node.text.length > characters ? `${node.text.slice(0, characters - 1)}…` : node.text;
      group.append(label);
    }
    const title = element('title', {});
    title.textContent = describe(node);
    group.append(title);
    return group;
  });
  const markers = kept.flatMap((sequence, index) => {
    const entry = byId.get(sequence.node);
    if (entry === undefined) return [];
    const marker = element('circle', {
      class: index === 0 ? 'kept chosen' : 'kept',
      'data-kept': index,
      cx: x(entry.end),
      cy: y(entry.y),
      r: 4,
    });
    const title = element('title', {});
    title.textContent = `kept #${index + 1}, score ${sequence.score.toFixed(3)}: ${JSON.stringify(sequence.text)}`;
    marker.append(title);
    return [marker];
  });
  svg.replaceChildren(...groups, ...markers);
}
