import { type AttentionKernelConfig, attentionKernelLayout } from './attention-kernel-config.js';
import { attentionParamsWgsl } from './attention-params.js';
import { emptyLseWgsl } from './empty-lse.js';
import { kvFormatWgsl } from './kv-format.js';

const range = (count: number): number[] => Array.from({ length: count }, (_, index) => index);

/**
 * WGSL of the fused DeFT attention kernel: one workgroup per (KV head, chunk) computes the partial
 * state `(o, lse)` of every query head of the group for every query that sees the chunk.
 *
 * - Grouped-query packing: the group's `groupSize` query heads are rows of one tile, so each KV byte
 *   is read once per chunk, not once per query head.
 * - Query tiling: the chunk's K/V tile is staged in workgroup memory once; rows are processed in tiles
 *   of `tileRows` while the K/V tile stays resident (a chunk longer than one tile is re-staged per row
 *   tile). When a plan has too few (KV head, chunk) units to fill the device, `rowSplits` workgroups
 *   share one unit's row tiles (tile `t` goes to split `t % rowSplits`); they read the same KV, mostly
 *   from the L2 cache, and write disjoint partial states.
 * - Masks: bit `j % 32` (LSB first) of word `[segment][j >> 5]` says whether the chunk's `j`-th query
 *   sees a segment; skipped when `chunkFullyVisible`.
 * - Partials: `o` normalised f32 `[numPartials, numHeads, headDim]`, `lse` base 2 `[numPartials, numHeads]`
 *   (scores are pre-multiplied by `scale · log2(e)` and exponentiated with `exp2`); the empty state is
 *   `lse = EMPTY_LSE`, `o = 0`.
 *
 * Bindings (group 0): 0 uniform `AttentionParams`, 1 plan words, 2 keys, 3 values (KV units of one
 * layer, `[numSlots, numKvHeads, headDim / 4]`), 4 queries `[numQueries, numHeads, headDim / 4]` vec4,
 * 5 partial `o`, 6 partial `lse`. Dispatch `(numKvHeads · rowSplits, chunkGridY, ceil(numChunks / chunkGridY))`.
 */
export function attentionShader(config: AttentionKernelConfig): string {
  const layout = attentionKernelLayout(config);
  const format = kvFormatWgsl(config.kvFormat);
  const rows = range(config.rowsPerThread);
  const tokens = range(config.tokensPerThread);
  const passes = range(layout.outPasses);
  const useSubgroups = config.subgroupLanes >= 2;
  const shuffleOffsets: number[] = [];
  if (useSubgroups)
    for (let offset = 1; offset < config.subgroupLanes; offset *= 2) shuffleOffsets.push(offset);
  const reducedBySubgroup = Math.max(1, config.subgroupLanes);
  const bit = (row: number, token: number): string => `${1 << (row * config.tokensPerThread + token)}u`;
  if (config.rowsPerThread * config.tokensPerThread > 32) throw new RangeError('score block larger than 32');

  /** Reduces `name_k` over the row group's lanes with `op` ('max' or '+'). */
  const reduceAcrossLanes = (name: string, combine: (a: string, b: string) => string): string[] => {
    const lines: string[] = [];
    for (const offset of shuffleOffsets) {
      for (const row of rows)
        lines.push(
          `      ${name}${row} = ${combine(`${name}${row}`, `subgroupShuffleXor(${name}${row}, ${offset}u)`)};`,
        );
    }
    if (layout.scratchLanes > 1) {
      lines.push(
        reducedBySubgroup > 1 ? `      if (lane % ${reducedBySubgroup}u == 0u) {` : '      {',
        ...rows.map(
          (row) =>
            `        laneScratch[(rowGroup * ROWS_PER_THREAD + ${row}u) * SCRATCH_LANES + lane / ${reducedBySubgroup}u] = ${name}${row};`,
        ),
        '      }',
        '      workgroupBarrier();',
        ...rows.flatMap((row) => [
          `      ${name}${row} = laneScratch[(rowGroup * ROWS_PER_THREAD + ${row}u) * SCRATCH_LANES];`,
          `      for (var other = 1u; other < SCRATCH_LANES; other++) {`,
          `        ${name}${row} = ${combine(`${name}${row}`, `laneScratch[(rowGroup * ROWS_PER_THREAD + ${row}u) * SCRATCH_LANES + other]`)};`,
          '      }',
        ]),
        '      workgroupBarrier();',
      );
    }
    return lines;
  };

  // K/V staging is software-pipelined: each thread loads its `stageLoads` units of the next tile into
  // registers (all loads in flight at once) while the current tile is being used.
  const stageLoads = Math.ceil((config.tileTokens * layout.units) / config.threads);
  const stages = range(stageLoads);
  const exactStages = (config.tileTokens * layout.units) % config.threads === 0;
  const prefetch = (tile: string): string[] => [
    '      {',
    `        let prefetchBegin = tokenBegin + (${tile}) * TILE_TOKENS;`,
    '        let prefetchLast = min(TILE_TOKENS, tokenEnd - prefetchBegin) - 1u;',
    ...stages.flatMap((stage) => [
      `        let prefetchIndex${stage} = thread + ${stage * config.threads}u;`,
      `        let prefetchSlot${stage} = plan[params.tokenSlots + prefetchBegin + min(prefetchIndex${stage} / UNITS, prefetchLast)];`,
    ]),
    ...stages.flatMap((stage) => [
      `        let prefetchSource${stage} = (prefetchSlot${stage} * params.numKvHeads + kvHead) * UNITS + prefetchIndex${stage} % UNITS;`,
      `        stagedKey${stage} = keys[prefetchSource${stage}];`,
      `        stagedValue${stage} = values[prefetchSource${stage}];`,
    ]),
    '        stagedSegment = plan[params.tokenSegments + prefetchBegin + min(thread, prefetchLast)];',
    '      }',
  ];

  const lines = [
    '// DeFT tree attention: one workgroup per (KV head, chunk). Generated by attentionShader().',
    format.enable,
    useSubgroups ? 'enable subgroups;' : '',
    '',
    attentionParamsWgsl(),
    '',
    `alias KVUnit = ${format.unitType};`,
    format.functions,
    emptyLseWgsl(),
    `const THREADS: u32 = ${config.threads}u;`,
    `const UNITS: u32 = ${layout.units}u;`,
    `const GROUP_SIZE: u32 = ${config.groupSize}u;`,
    `const TILE_TOKENS: u32 = ${config.tileTokens}u;`,
    `const TILE_ROWS: u32 = ${layout.tileRows}u;`,
    `const TOKEN_LANES: u32 = ${layout.tokenLanes}u;`,
    `const ROWS_PER_THREAD: u32 = ${config.rowsPerThread}u;`,
    `const KV_STRIDE: u32 = ${layout.kvStride}u;`,
    `const OUT_ROW_STRIDE: u32 = ${layout.outRowStride}u;`,
    `const SCRATCH_LANES: u32 = ${layout.scratchLanes}u;`,
    '',
    '@group(0) @binding(0) var<uniform> params: AttentionParams;',
    '@group(0) @binding(1) var<storage, read> plan: array<u32>;',
    '@group(0) @binding(2) var<storage, read> keys: array<KVUnit>;',
    '@group(0) @binding(3) var<storage, read> values: array<KVUnit>;',
    '@group(0) @binding(4) var<storage, read> queries: array<vec4<f32>>;',
    '@group(0) @binding(5) var<storage, read_write> partialO: array<vec4<f32>>;',
    '@group(0) @binding(6) var<storage, read_write> partialLse: array<f32>;',
    '',
    'var<workgroup> queryTile: array<vec4<f32>, TILE_ROWS * UNITS>;',
    '// K and V are converted to f32 once, when staged (not once per row group).',
    'var<workgroup> keyTile: array<vec4<f32>, TILE_TOKENS * KV_STRIDE>;',
    'var<workgroup> valueTile: array<vec4<f32>, TILE_TOKENS * KV_STRIDE>;',
    '// Probabilities [TILE_ROWS, TILE_TOKENS], four tokens per vec4.',
    'var<workgroup> probabilityTile: array<vec4<f32>, TILE_ROWS * TILE_TOKENS / 4u>;',
    'var<workgroup> tileSegments: array<u32, TILE_TOKENS>;',
    'var<workgroup> rowMax: array<f32, TILE_ROWS>;',
    'var<workgroup> rowSum: array<f32, TILE_ROWS>;',
    'var<workgroup> rowRescale: array<f32, TILE_ROWS>;',
    layout.scratchLanes > 1 ? 'var<workgroup> laneScratch: array<f32, TILE_ROWS * SCRATCH_LANES>;' : '',
    '',
    '@compute @workgroup_size(THREADS)',
    'fn main(@builtin(workgroup_id) workgroupId: vec3<u32>, @builtin(local_invocation_index) thread: u32) {',
    '  let chunk = workgroupId.y + workgroupId.z * params.chunkGridY;',
    '  if (chunk >= params.numChunks) {',
    '    return;',
    '  }',
    '  let kvHead = workgroupId.x % params.numKvHeads;',
    '  let split = workgroupId.x / params.numKvHeads;',
    '  let headBase = kvHead * GROUP_SIZE;',
    '  let tokenBegin = plan[params.chunkTokenIndptr + chunk];',
    '  let tokenEnd = plan[params.chunkTokenIndptr + chunk + 1u];',
    '  let queryBegin = plan[params.chunkQueryIndptr + chunk];',
    '  let chunkQueryCount = plan[params.chunkQueryIndptr + chunk + 1u] - queryBegin;',
    '  let maskBase = params.mask + plan[params.chunkMaskOffset + chunk];',
    '  let maskWords = (chunkQueryCount + 31u) / 32u;',
    '  let fullyVisible = plan[params.chunkFullyVisible + chunk] != 0u;',
    '  let totalRows = chunkQueryCount * GROUP_SIZE;',
    '  let kvTiles = (tokenEnd - tokenBegin + TILE_TOKENS - 1u) / TILE_TOKENS;',
    '  let rowTiles = (totalRows + TILE_ROWS - 1u) / TILE_ROWS;',
    '  let lane = thread % TOKEN_LANES;',
    '  let rowGroup = thread / TOKEN_LANES;',
    '  let outUnit = thread % UNITS;',
    '  let outRow = thread / UNITS;',
    '  let writesOutput = thread < OUT_ROW_STRIDE * UNITS;',
    ...stages.flatMap((stage) => [`  var stagedKey${stage}: KVUnit;`, `  var stagedValue${stage}: KVUnit;`]),
    '  var stagedSegment = 0u;',
    '  if (kvTiles > 0u && split < rowTiles) {',
    ...prefetch('0u').map((line) => line.slice(2)),
    '  }',
    '',
    '  for (var rowTile = split; rowTile < rowTiles; rowTile += params.rowSplits) {',
    '    let rowBase = rowTile * TILE_ROWS;',
    '    workgroupBarrier();',
    '    // Stage the rows of this tile, pre-multiplied by scale * log2(e).',
    ...range(Math.ceil((layout.tileRows * layout.units) / config.threads)).flatMap((stage) => [
      `    let queryIndex${stage} = thread + ${stage * config.threads}u;`,
      `    let queryRow${stage} = rowBase + queryIndex${stage} / UNITS;`,
      `    let queryId${stage} = plan[params.chunkQueries + queryBegin + min(queryRow${stage}, totalRows - 1u) / GROUP_SIZE];`,
    ]),
    ...range(Math.ceil((layout.tileRows * layout.units) / config.threads)).flatMap((stage) => [
      `    if (queryIndex${stage} < TILE_ROWS * UNITS) {`,
      `      let head = headBase + queryRow${stage} % GROUP_SIZE;`,
      `      let value = queries[(queryId${stage} * params.numHeads + head) * UNITS + queryIndex${stage} % UNITS] * params.scaleLog2;`,
      `      queryTile[queryIndex${stage}] = select(vec4<f32>(0.0), value, queryRow${stage} < totalRows);`,
      '    }',
    ]),
    '    for (var row = thread; row < TILE_ROWS; row += THREADS) {',
    '      rowMax[row] = EMPTY_LSE;',
    '      rowSum[row] = 0.0;',
    '    }',
    ...passes.map((pass) => `    var acc${pass} = vec4<f32>(0.0);`),
    ...passes.map(
      (pass) => `    let outRow${pass} = min(outRow + ${pass * layout.outRowStride}u, TILE_ROWS - 1u);`,
    ),
    '',
    '    for (var kvTile = 0u; kvTile < kvTiles; kvTile++) {',
    '      let tileBegin = tokenBegin + kvTile * TILE_TOKENS;',
    '      let tileTokens = min(TILE_TOKENS, tokenEnd - tileBegin);',
    '      // A chunk that fits one tile is staged once and reused by every row tile.',
    '      if (rowTile == split || kvTiles > 1u) {',
    '        workgroupBarrier();',
    ...stages.flatMap((stage) => {
      const store = [
        `          let token = ${stage === 0 ? 'thread' : `(thread + ${stage * config.threads}u)`} / UNITS;`,
        `          let unit = (thread + ${stage * config.threads}u) % UNITS;`,
        '          // Tokens past the chunk are zero: the output loop reads whole groups of four.',
        `          keyTile[token * KV_STRIDE + unit] = select(vec4<f32>(0.0), unitToF32(stagedKey${stage}), token < tileTokens);`,
        `          valueTile[token * KV_STRIDE + unit] = select(vec4<f32>(0.0), unitToF32(stagedValue${stage}), token < tileTokens);`,
      ];
      return exactStages || stage < stageLoads - 1
        ? ['        {', ...store, '        }']
        : [`        if (thread + ${stage * config.threads}u < TILE_TOKENS * UNITS) {`, ...store, '        }'];
    }),
    '        if (thread < TILE_TOKENS) {',
    '          tileSegments[thread] = stagedSegment;',
    '        }',
    '        if (kvTiles > 1u) {',
    ...prefetch('(kvTile + 1u) % kvTiles').map((line) => `    ${line}`),
    '        }',
    '      }',
    '      workgroupBarrier();',
    '',
    "      // Scores of this thread's block: rows rowGroup * ROWS_PER_THREAD + r, tokens lane + t * TOKEN_LANES.",
    ...rows.flatMap((row) => tokens.map((token) => `      var score${row}_${token} = 0.0;`)),
    '      for (var unit = 0u; unit < UNITS; unit++) {',
    ...tokens.map(
      (token) =>
        `        let key${token} = keyTile[(lane + ${token * layout.tokenLanes}u) * KV_STRIDE + unit];`,
    ),
    ...rows.flatMap((row) => [
      `        let query${row} = queryTile[(rowGroup * ROWS_PER_THREAD + ${row}u) * UNITS + unit];`,
      ...tokens.map((token) => `        score${row}_${token} += dot(query${row}, key${token});`),
    ]),
    '      }',
    '',
    '      // Visibility: bit (r * TOKENS_PER_THREAD + t) of `visible`.',
    '      var visible = 0u;',
    ...rows.flatMap((row) => [
      `      let row${row} = rowBase + rowGroup * ROWS_PER_THREAD + ${row}u;`,
      `      if (row${row} < totalRows) {`,
      `        let localQuery = row${row} / GROUP_SIZE;`,
      '        let maskWord = maskBase + (localQuery >> 5u);',
      '        let maskBit = localQuery & 31u;',
      ...tokens.flatMap((token) => [
        `        let token${token} = lane + ${token * layout.tokenLanes}u;`,
        `        if (token${token} < tileTokens && (fullyVisible || ((plan[maskWord + tileSegments[token${token}] * maskWords] >> maskBit) & 1u) != 0u)) {`,
        `          visible |= ${bit(row, token)};`,
        '        }',
      ]),
      '      }',
    ]),
    '',
    '      // Online softmax in base 2: new running max, rescale factor, probabilities.',
    ...rows.flatMap((row) => [
      `      let previousMax${row} = rowMax[rowGroup * ROWS_PER_THREAD + ${row}u];`,
      `      var tileMax${row} = EMPTY_LSE;`,
      ...tokens.map(
        (token) =>
          `      if ((visible & ${bit(row, token)}) != 0u) { tileMax${row} = max(tileMax${row}, score${row}_${token}); }`,
      ),
    ]),
    ...reduceAcrossLanes('tileMax', (a, b) => `max(${a}, ${b})`),
    ...rows.flatMap((row) => [
      `      let newMax${row} = max(previousMax${row}, tileMax${row});`,
      `      // Empty-state guard: an empty previous state rescales by exp2(-200) = 0; two empty states keep 1 (sum stays 0).`,
      `      let rescale${row} = exp2(max(previousMax${row} - newMax${row}, -200.0));`,
      `      var tileSum${row} = 0.0;`,
      ...tokens.flatMap((token) => [
        `      let probability${row}_${token} = select(0.0, exp2(score${row}_${token} - newMax${row}), (visible & ${bit(row, token)}) != 0u);`,
        `      probabilityTile[((rowGroup * ROWS_PER_THREAD + ${row}u) * TILE_TOKENS + lane + ${token * layout.tokenLanes}u) / 4u][(lane + ${token * layout.tokenLanes}u) % 4u] = probability${row}_${token};`,
        `      tileSum${row} += probability${row}_${token};`,
      ]),
    ]),
    ...reduceAcrossLanes('tileSum', (a, b) => `${a} + ${b}`),
    '      if (lane == 0u) {',
    ...rows.flatMap((row) => [
      `        let tileRow${row} = rowGroup * ROWS_PER_THREAD + ${row}u;`,
      `        rowMax[tileRow${row}] = newMax${row};`,
      `        rowSum[tileRow${row}] = rowSum[tileRow${row}] * rescale${row} + tileSum${row};`,
      `        rowRescale[tileRow${row}] = rescale${row};`,
    ]),
    '      }',
    '      workgroupBarrier();',
    '',
    "      // o += p · V for this thread's output units.",
    ...passes.map((pass) => `      acc${pass} *= rowRescale[outRow${pass}];`),
    '      for (var quad = 0u; quad < (tileTokens + 3u) / 4u; quad++) {',
    ...passes.map(
      (pass) =>
        `        let probabilities${pass} = probabilityTile[outRow${pass} * (TILE_TOKENS / 4u) + quad];`,
    ),
    '        for (var offset = 0u; offset < 4u; offset++) {',
    '          let value = valueTile[(quad * 4u + offset) * KV_STRIDE + outUnit];',
    ...passes.map((pass) => `          acc${pass} += probabilities${pass}[offset] * value;`),
    '        }',
    '      }',
    '    }',
    '',
    '    // Partial state of every row of the tile (empty-state guard: a row that saw no key has sum 0).',
    ...passes.flatMap((pass) => [
      `    if (writesOutput && outRow + ${pass * layout.outRowStride}u < TILE_ROWS && rowBase + outRow${pass} < totalRows) {`,
      `      let row = rowBase + outRow${pass};`,
      `      let sum = rowSum[outRow${pass}];`,
      '      let state = (queryBegin + row / GROUP_SIZE) * params.numHeads + headBase + row % GROUP_SIZE;',
      `      partialO[state * UNITS + outUnit] = select(vec4<f32>(0.0), acc${pass} / sum, sum > 0.0);`,
      '      if (outUnit == 0u) {',
      `        partialLse[state] = select(EMPTY_LSE, rowMax[outRow${pass}] + log2(sum), sum > 0.0);`,
      '      }',
      '    }',
    ]),
    '  }',
    '}',
    '',
  ];
  return lines.filter((line, index, all) => !(line === '' && all[index - 1] === '')).join('\n');
}
