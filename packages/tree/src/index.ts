export type { DumpableTree, DumpTreeOptions } from './dump/dump-tree.js';
export { dumpTree } from './dump/dump-tree.js';
export type { ParsedTokenTree, TokenTreeJSON, TokenTreeNodeJSON } from './serialize/token-tree-json.js';
export {
  parseTokenTreeJSON,
  TOKEN_TREE_JSON_FORMAT,
  TOKEN_TREE_JSON_VERSION,
} from './serialize/token-tree-json.js';
export type { TreeTopologyView } from './topology/tree-topology.js';
export { TreeTopology } from './topology/tree-topology.js';
export { TokenTree } from './tree/token-tree.js';
export type {
  CommitResult,
  TreeChange,
  TreeChangeListener,
  TreeChangePhase,
  TreeQueryList,
  TreeQueryMode,
} from './tree/tree-change.js';
export { MAX_TOKEN_ID } from './validate/to-token-array.js';
