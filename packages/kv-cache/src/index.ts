export type { PagedTreeView, TreeQueries } from './plan/paged-tree-view.js';
