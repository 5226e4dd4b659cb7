import { buildGroupedPlan } from '../src/plan/build-grouped-plan.js';
import { buildTreeQueryLayout } from '../src/plan/tree-query-layout.js';
import { buildPagedTree } from '../src/testing/build-paged-tree.js';
import { defaultQueries } from '../src/testing/default-queries.js';

const shape = { numHeads: 32, numKvHeads: 8, headDim: 128, kvDtype: 'f16' as const };
const { view } = buildPagedTree(
  [{ parent: -1, tokens: 1000 }, ...Array.from({ length: 256 }, () => ({ parent: 0, tokens: 1 }))],
  16,
  { seed: 1 },
);
const queries = defaultQueries(view);
const layout = buildTreeQueryLayout(view, queries);
console.log('ascending', layout.ranksAscending);
for (const label of ['layout', 'grouped']) {
  const fn =
    label === 'layout'
      ? () => buildTreeQueryLayout(view, queries)
      : () => buildGroupedPlan(view, layout, 'deft-flatten', 32, false, shape);
  for (let i = 0; i < 3000; i++) fn();
  const c = process.cpuUsage();
  const t = performance.now();
  const n = 5000;
  for (let i = 0; i < n; i++) fn();
  const u = process.cpuUsage(c);
  console.log(
    label,
    (((performance.now() - t) / n) * 1000).toFixed(1),
    'us wall',
    (u.user / n).toFixed(1),
    'us cpu',
  );
}
