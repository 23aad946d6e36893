// The Random faces tab's faces, each drawn on a <canvas> in #random-faces.
//
// The value is the draw, {seed, count, temperature, prior}, which every control changes in the
// page (app.RANDOM_VALUE_JS, fn=None): the faces' latents are drawn here with seeded.js's
// generator, the same numbers as FacePipeline.seed_latents (facevae.seeded), and decoded here,
// with no call to the server; "Draw faces" draws the value again. The mixture's parameters
// (app.page_mixture_file) are fetched once, when a mixture is first drawn. Only the newest value
// is kept and one redraw runs at a time; #random-faces' data-draws counts the redraws done. Where
// the page cannot decode, the server draws the faces (app.RandomFaces' server function;
// drawing.js chooses).

import { drawPlanes, drawUrl } from './canvas.js';
import { loadDecoder } from './decoder.js';
import { canvasesIn, drawNewest } from './drawing.js';
import { loadRuntime } from './runtime.js';
import { mulberry32, normals, seedState } from './seeded.js';

function float16s(bytes) {
  // little-endian IEEE half floats -> doubles
  const halves = new Uint16Array(bytes), out = new Float64Array(halves.length);
  for (let i = 0; i < halves.length; i++) {
    const h = halves[i], exponent = (h >> 10) & 31, fraction = h & 1023, sign = h >> 15 ? -1 : 1;
    out[i] = sign * (exponent === 0 ? fraction * 2 ** -24
      : exponent === 31 ? (fraction ? NaN : Infinity) : (1 + fraction / 1024) * 2 ** (exponent - 15));
  }
  return out;
}

export function mixtureOf(bytes, dim) {
  // facevae.seeded.mixture_bytes' layout: C weights, C×dim means, C lower triangles row by row
  const numbers = float16s(bytes), triangle = (dim * (dim + 1)) / 2;
  const components = numbers.length / (1 + dim + triangle);
  if (!Number.isInteger(components)) throw new Error(`a mixture file of ${bytes.byteLength} bytes is not for ${dim} dimensions`);
  const weights = numbers.subarray(0, components), cumulative = new Float64Array(components);
  weights.reduce((sum, w, c) => (cumulative[c] = sum + w), 0);
  return { dim, cumulative, means: numbers.subarray(components, components * (1 + dim)),
           triangles: numbers.subarray(components * (1 + dim)), triangle };
}

export function seededLatents(value, dim, mixture = null) {
  // facevae.seeded.seeded_latents: value.count latents of `dim` numbers (Float32Array each)
  const uniform = mulberry32(seedState(value.seed)), t = value.temperature, noise = new Float64Array(dim);
  if (value.prior === 'normal') {
    return Array.from({ length: value.count }, () => Float32Array.from(normals(uniform, dim, noise), (x) => t * x));
  }
  if (value.prior !== 'mixture' || !mixture) throw new Error(`no ${value.prior} prior here`);
  const { cumulative, means, triangles, triangle } = mixture, last = cumulative.length - 1;
  return Array.from({ length: value.count }, () => {
    const pick = uniform() * cumulative[last];
    let c = 0;
    while (c < last && !(pick < cumulative[c])) c++;  // the first component whose cumulative weight exceeds it
    normals(uniform, dim, noise);
    const z = new Float32Array(dim), tril = triangles.subarray(c * triangle), mean = means.subarray(c * dim);
    for (let i = 0, k = 0; i < dim; i++) {
      let sum = 0;
      for (let j = 0; j <= i; j++) sum += tril[k++] * noise[j];
      z[i] = mean[i] + t * sum;
    }
    return z;
  });
}

function gridPng(canvases, columns = 8, gap = 2) {
  // facevae.pipeline.grid_png's layout: `columns` faces a row, `gap` px around each, black between
  const size = canvases[0].width, rows = Math.ceil(canvases.length / columns);
  const width = Math.min(columns, canvases.length) * (size + gap) + gap;
  const grid = document.createElement('canvas');
  grid.width = width;
  grid.height = rows * (size + gap) + gap;
  const g = grid.getContext('2d');
  canvases.forEach((canvas, i) => g.drawImage(canvas, gap + (i % columns) * (size + gap),
    gap + Math.floor(i / columns) * (size + gap)));
  return grid.toDataURL('image/png');
}

export function mount(element, props, server, watch) {
  const box = element.querySelector('#random-faces');
  let draws = 0, mixture = null;

  function loadMixture() {
    // once, when a mixture is first drawn; a failed fetch is tried again at the next draw
    if (!props.mixture_url) return Promise.reject(new Error('these weights ship no fitted mixture prior'));
    mixture ??= fetch(new URL(props.mixture_url, location.href))
      .then((response) => {
        if (!response.ok) throw new Error(`the mixture prior: HTTP ${response.status}`);
        return response.arrayBuffer();
      })
      .then((bytes) => mixtureOf(bytes, props.latent_dim))
      .catch((error) => { mixture = null; throw error; });
    return mixture;
  }

  async function browserDraw() {
    if (!props.onnx_url) throw new Error('these weights ship no ONNX decoder');
    const decoder = await loadDecoder(await loadRuntime(props.runtime_url), props.onnx_url);
    return async (value) => {
      const latents = seededLatents(value, props.latent_dim, value.prior === 'mixture' ? await loadMixture() : null);
      const faces = await decoder.decodeAll(latents);
      const shown = canvasesIn(box, value.count, props.size, 'random face');
      faces.forEach((planes, i) => drawPlanes(shown[i], planes));
    };
  }

  async function serverDraw(value) {
    const faces = await server.decode_faces(value);
    if (faces.error) throw new Error(faces.error);
    const shown = canvasesIn(box, value.count, props.size, 'random face');
    await Promise.all(faces.pngs.map((png, i) => drawUrl(shown[i], png)));
  }

  element.querySelector('.random-download').addEventListener('click', (event) => {
    event.currentTarget.href = gridPng([...box.children]);
  });
  const { redraw } = drawNewest(element, props, watch, {
    note: element.querySelector('.random-mode'),
    inBrowser: browserDraw,
    browserNote: 'Drawn in this browser (WebAssembly): count, seed and temperature move them here.',
    onServer: serverDraw,
    serverNote: (reason) => `Drawn on the server (${reason}).`,
    failed: 'Could not draw the faces',
    drawn: () => { box.dataset.draws = ++draws; },  // tests and the benchmark wait on this
  });
  box.addEventListener('redraw', redraw);  // "Draw faces" (app.RANDOM_REDRAW_JS)
}
