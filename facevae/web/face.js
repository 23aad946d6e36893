// The face of the explorer and the morph, drawn on a <canvas> from its latent.
//
// A slider move never reaches the server: its value goes into the component's value, the latent is
// computed here (the same formulas as facevae.pipeline.FacePipeline.shift and facevae.latent), and
// the decoder runs in the page with ONNX Runtime Web (WASM). Where it cannot, the server decodes the
// value instead (app.FaceCanvas's server function). Either way only the newest value is kept and at
// most one face is decoded per animation frame, one at a time (drawing.js).

import { drawPlanes, drawUrl } from './canvas.js';
import { loadDecoder } from './decoder.js';
import { drawNewest } from './drawing.js';
import { loadRuntime } from './runtime.js';

export function lerp(z0, z1, t) {
  // torch.lerp's formula: exact at both ends
  return z0.map((a, i) => (t < 0.5 ? a + t * (z1[i] - a) : z1[i] - (z1[i] - a) * (1 - t)));
}

const norm = (z) => Math.hypot(...z);

export function slerp(z0, z1, t, eps = 1e-7) {
  // facevae.latent.slerp: along the great circle between the directions, the norm interpolated linearly
  const n0 = norm(z0), n1 = norm(z1);
  const u0 = z0.map((v) => v / Math.max(n0, eps)), u1 = z1.map((v) => v / Math.max(n1, eps));
  const cos = u0.reduce((sum, v, i) => sum + v * u1[i], 0);
  const omega = Math.acos(Math.min(Math.max(cos, -1 + eps), 1 - eps));
  const a = Math.sin((1 - t) * omega) / Math.sin(omega), b = Math.sin(t * omega) / Math.sin(omega);
  const length = n0 + t * (n1 - n0);
  return u0.map((v, i) => (a * v + b * u1[i]) * length);
}

export const INTERPOLATIONS = { spherical: slerp, linear: lerp };

export function shift(z, dimensionOffsets, pcOffsets, attributeOffsets, basis) {
  // FacePipeline.shift: attribute offsets in slider units, dimension and principal-direction
  // offsets in standard deviations of the training posteriors
  const out = Array.from(z);
  const add = (direction, scale) => direction.forEach((v, i) => { out[i] += scale * v; });
  for (const [name, offset] of Object.entries(attributeOffsets)) {
    if (offset) add(basis.attribute_directions[basis.attributes.indexOf(name)], offset);
  }
  for (const [dim, offset] of Object.entries(dimensionOffsets)) {
    out[dim] += offset * (basis.std ? basis.std[dim] : 1);
  }
  if (basis.pc_stds && pcOffsets.length) {
    pcOffsets.slice(0, basis.pc_stds.length).forEach((v, k) => add(basis.pc_directions[k], v * basis.pc_stds[k]));
  }
  return out;
}

export function exploreOffsets(basis, dimensions, sliders) {
  // app.explorer_tab's offsets(): slider values -> attribute, dimension and principal-direction offsets
  const n = basis.attributes.length, m = basis.dimension_sliders;
  const attributes = Object.fromEntries(basis.attributes.map((name, i) => [name, basis.signs[i] * sliders[i]]));
  const chosen = (dimensions ?? []).slice(0, m);
  const dims = Object.fromEntries(chosen.map((d, i) => [d, sliders[n + i]]).filter(([, v]) => v !== undefined));
  return { attributes, dims, pcs: sliders.slice(n + m) };
}

export function latentOf(value, basis) {
  if (value.kind === 'morph') return INTERPOLATIONS[value.method](value.a, value.b, value.t);
  const { attributes, dims, pcs } = exploreOffsets(basis, value.dimensions, value.sliders);
  return shift(value.z, dims, pcs, attributes, basis);
}

async function browserDecoder(props, server) {
  if (!props.onnx_url) throw new Error('these weights ship no ONNX decoder');
  const ort = await loadRuntime(props.runtime_url);
  const [decoder, basis] = await Promise.all([loadDecoder(ort, props.onnx_url), server.latent_basis()]);
  return (value) => decoder.decode(latentOf(value, basis));  // 3×H×W in [0, 1]
}

export function mount(element, props, server, watch) {
  const canvas = element.querySelector('canvas');
  let frames = 0;

  element.querySelector('.face-download').addEventListener('click', (event) => {
    event.currentTarget.href = canvas.toDataURL('image/png');
  });
  drawNewest(element, props, watch, {
    note: element.querySelector('.face-mode'),
    inBrowser: async () => {
      const decode = await browserDecoder(props, server);
      return async (value) => drawPlanes(canvas, await decode(value));
    },
    browserNote: 'Decoded in this browser (WebAssembly).',
    onServer: async (value) => {
      const face = await server.decode(value);
      if (face.error) throw new Error(face.error);
      await drawUrl(canvas, face.png);
    },
    serverNote: (reason) => `Decoded on the server (${reason}).`,
    failed: 'Could not draw the face',
    drawn: () => { canvas.dataset.frames = ++frames; },  // tests and the benchmark wait on this
  });
}
