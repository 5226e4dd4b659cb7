import { fencedWallMicroseconds, median, timePasses } from './webgpu-timing.js';

const STORAGE = 0x0080;
const COPY_DST = 0x0008;

/** The device's own limits, measured in the same process as the attention timings. */
export interface WebGpuFloors {
  /** Bytes read + written per second by a `vec4<u32>` copy kernel. */
  readonly copyBytesPerSecond: number;
  /** Bytes copied per run (read + written = twice this). */
  readonly copyBufferBytes: number;
  /** f32 FLOP/s of a register-only FMA kernel (an FMA counts 2). */
  readonly fmaFlopsPerSecond: number;
  readonly fmaFlopsPerRun: number;
  /** How the floors were timed. */
  readonly timing: 'timestamp-query' | 'fenced wall time';
}

const COPY_THREADS = 256;
const FMA_THREADS = 256;
const FMA_ITERATIONS = 2048;
const FMA_CHAINS = 8;

const COPY_PER_THREAD = 4;

/** A `vec4<u32>` copy, four elements per invocation (strided by the grid, so each access is coalesced). */
export const COPY_SHADER = `
@group(0) @binding(0) var<storage, read> source: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> destination: array<vec4<u32>>;
struct Grid { width: u32, count: u32, stride: u32 }
@group(0) @binding(2) var<uniform> grid: Grid;
@compute @workgroup_size(${COPY_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let first = id.x + id.y * grid.width * ${COPY_THREADS}u;
  for (var step = 0u; step < ${COPY_PER_THREAD}u; step++) {
    let index = first + step * grid.stride;
    if (index < grid.count) {
      destination[index] = source[index];
    }
  }
}
`;

/** Independent FMA chains on vec4<f32> held in registers; the store depends on the result so nothing is eliminated. */
export const FMA_SHADER = `
@group(0) @binding(0) var<storage, read_write> sink: array<vec4<f32>>;
@compute @workgroup_size(${FMA_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let seed = f32(id.x) * 1.0e-9;
${Array.from({ length: FMA_CHAINS }, (_, chain) => `  var a${chain} = vec4<f32>(seed + ${chain}.0e-3);`).join('\n')}
  let m = vec4<f32>(0.999999);
  let c = vec4<f32>(1.0e-7);
  for (var iteration = 0u; iteration < ${FMA_ITERATIONS}u; iteration++) {
${Array.from({ length: FMA_CHAINS }, (_, chain) => `    a${chain} = fma(a${chain}, m, c);`).join('\n')}
  }
  let total = ${Array.from({ length: FMA_CHAINS }, (_, chain) => `a${chain}`).join(' + ')};
  if (total.x == 1234.5) {
    sink[0] = total;
  }
}
`;

/**
 * Measures the copy bandwidth (`vec4<u32>` copy of `copyBufferBytes`, read + written bytes) and the
 * f32 FMA rate (register-only kernel of `fmaWorkgroups × 256` invocations) with timestamp queries when
 * the device has them, else with fenced wall time. Medians of repeated runs.
 */
export async function measureWebGpuFloors(
  device: GPUDevice,
  options: { readonly copyBufferBytes: number; readonly fmaWorkgroups: number; readonly runs: number },
): Promise<WebGpuFloors> {
  const useTimestamps = device.features.has('timestamp-query');
  const maxDimension = device.limits.maxComputeWorkgroupsPerDimension;
  const copyBytes = Math.floor(options.copyBufferBytes / 16) * 16;
  const elements = copyBytes / 16;
  const workgroups = Math.ceil(elements / COPY_PER_THREAD / COPY_THREADS);
  const width = Math.min(workgroups, maxDimension);
  const height = Math.ceil(workgroups / width);
  const stride = width * height * COPY_THREADS;
  const source = device.createBuffer({ size: copyBytes, usage: STORAGE });
  const destination = device.createBuffer({ size: copyBytes, usage: STORAGE });
  const grid = device.createBuffer({ size: 16, usage: 0x0040 | COPY_DST });
  device.queue.writeBuffer(grid, 0, Uint32Array.of(width, elements, stride, 0));
  const sink = device.createBuffer({ size: 16, usage: STORAGE });
  try {
    const copyPipeline = await device.createComputePipelineAsync({
      layout: 'auto',
      compute: { module: device.createShaderModule({ code: COPY_SHADER }), entryPoint: 'main' },
    });
    const copyGroup = device.createBindGroup({
      layout: copyPipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: source } },
        { binding: 1, resource: { buffer: destination } },
        { binding: 2, resource: { buffer: grid } },
      ],
    });
    const fmaPipeline = await device.createComputePipelineAsync({
      layout: 'auto',
      compute: { module: device.createShaderModule({ code: FMA_SHADER }), entryPoint: 'main' },
    });
    const fmaGroup = device.createBindGroup({
      layout: fmaPipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: sink } }],
    });
    const fmaWidth = Math.min(options.fmaWorkgroups, maxDimension);
    const fmaHeight = Math.ceil(options.fmaWorkgroups / fmaWidth);
    const fmaFlopsPerRun = fmaWidth * fmaHeight * FMA_THREADS * FMA_ITERATIONS * FMA_CHAINS * 4 * 2;

    const copyPass = (encoder: GPUCommandEncoder, timestampWrites?: GPUComputePassTimestampWrites) => {
      const pass = encoder.beginComputePass(timestampWrites === undefined ? {} : { timestampWrites });
      pass.setPipeline(copyPipeline);
      pass.setBindGroup(0, copyGroup);
      pass.dispatchWorkgroups(width, height);
      pass.end();
    };
    const fmaPass = (encoder: GPUCommandEncoder, timestampWrites?: GPUComputePassTimestampWrites) => {
      const pass = encoder.beginComputePass(timestampWrites === undefined ? {} : { timestampWrites });
      pass.setPipeline(fmaPipeline);
      pass.setBindGroup(0, fmaGroup);
      pass.dispatchWorkgroups(fmaWidth, fmaHeight);
      pass.end();
    };
    let copyMicroseconds: number;
    let fmaMicroseconds: number;
    const timing = {
      minRuns: options.runs,
      maxRuns: options.runs,
      budgetMilliseconds: 0,
      batch: Math.min(8, options.runs),
    };
    // Warm up (first touches, clocks), then measure.
    await fencedWallMicroseconds(device, (encoder) => fmaPass(encoder), 10, 2);
    await fencedWallMicroseconds(device, (encoder) => copyPass(encoder), 10, 2);
    if (useTimestamps) {
      copyMicroseconds = median(await timePasses(device, copyPass, timing));
      fmaMicroseconds = median(await timePasses(device, fmaPass, timing));
    } else {
      copyMicroseconds = await fencedWallMicroseconds(
        device,
        (encoder) => copyPass(encoder),
        options.runs,
        3,
      );
      fmaMicroseconds = await fencedWallMicroseconds(device, (encoder) => fmaPass(encoder), options.runs, 3);
    }
    return {
      copyBytesPerSecond: (2 * copyBytes) / (copyMicroseconds * 1e-6),
      copyBufferBytes: copyBytes,
      fmaFlopsPerSecond: fmaFlopsPerRun / (fmaMicroseconds * 1e-6),
      fmaFlopsPerRun,
      timing: useTimestamps ? 'timestamp-query' : 'fenced wall time',
    };
  } finally {
    for (const buffer of [source, destination, grid, sink]) buffer.destroy();
  }
}
