import { InvalidArgumentError } from '@deft/core';
import { describeValue } from '@deft/core/validate';
import { toTokenArray } from '../validate/to-token-array.js';

/** Format tag of {@link TokenTreeJSON}. */
export const TOKEN_TREE_JSON_FORMAT = 'deft-token-tree';
/** Version of {@link TokenTreeJSON}. */
export const TOKEN_TREE_JSON_VERSION = 1;

/** One node of a serialised token tree. */
export interface TokenTreeNodeJSON {
  readonly id: number;
  /** Parent id, `-1` for the root. */
  readonly parent: number;
  readonly tokens: readonly number[];
}

/**
 * A token tree as plain JSON. `nodes` lists every node with the root first and every parent before its children;
 * siblings keep their order of appearance ({@link TokenTree.toJSON} writes depth-first pre-order). `nextId` is
 * the id the next created node gets, so ids stay unique across a round trip.
 */
export interface TokenTreeJSON {
  readonly format: typeof TOKEN_TREE_JSON_FORMAT;
  readonly version: typeof TOKEN_TREE_JSON_VERSION;
  readonly nextId: number;
  readonly nodes: readonly TokenTreeNodeJSON[];
}

/** A validated serialised tree. */
export interface ParsedTokenTree {
  readonly nextId: number;
  readonly nodes: readonly { readonly id: number; readonly parent: number; readonly tokens: Int32Array }[];
}

function fail(argument: string, expected: string, actual: unknown): never {
  throw new InvalidArgumentError(
    `${argument} must be ${expected}, got ${describeValue(actual)}; pass the output of TokenTree.toJSON()`,
    { argument, expected, actual },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a serialised token tree.
 *
 * @throws InvalidArgumentError naming the first offending field.
 */
export function parseTokenTreeJSON(value: unknown): ParsedTokenTree {
  if (!isRecord(value)) fail('json', 'an object', value);
  if (value.format !== TOKEN_TREE_JSON_FORMAT)
    fail('json.format', `"${TOKEN_TREE_JSON_FORMAT}"`, value.format);
  if (value.version !== TOKEN_TREE_JSON_VERSION)
    fail('json.version', String(TOKEN_TREE_JSON_VERSION), value.version);
  const nodesValue = value.nodes;
  if (!Array.isArray(nodesValue) || nodesValue.length === 0) {
    fail('json.nodes', 'a non-empty array (the root first)', nodesValue);
  }
  const seen = new Set<number>();
  const nodes: { id: number; parent: number; tokens: Int32Array }[] = [];
  let maximumId = -1;
  for (let index = 0; index < nodesValue.length; index++) {
    const node: unknown = nodesValue[index];
    const argument = `json.nodes[${index}]`;
    if (!isRecord(node)) fail(argument, 'an object {id, parent, tokens}', node);
    const id = node.id;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0x7ffffffe) {
      fail(`${argument}.id`, 'an integer >= 0', id);
    }
    if (seen.has(id)) fail(`${argument}.id`, 'an id not used by an earlier node', id);
    const parent = node.parent;
    if (index === 0) {
      if (parent !== -1) fail(`${argument}.parent`, '-1 (the first node is the root)', parent);
    } else if (typeof parent !== 'number' || !seen.has(parent)) {
      fail(`${argument}.parent`, 'the id of an earlier node (parents come before their children)', parent);
    }
    if (!Array.isArray(node.tokens)) fail(`${argument}.tokens`, 'an array of token ids', node.tokens);
    const tokens = toTokenArray(`${argument}.tokens`, node.tokens);
    seen.add(id);
    maximumId = Math.max(maximumId, id);
    nodes.push({ id, parent: parent as number, tokens });
  }
  const nextId = value.nextId === undefined ? maximumId + 1 : value.nextId;
  if (typeof nextId !== 'number' || !Number.isInteger(nextId) || nextId <= maximumId || nextId > 0x7fffffff) {
    fail('json.nextId', `an integer > ${maximumId} (the largest id)`, nextId);
  }
  return { nextId, nodes };
}
