// The Random faces tab's faces, each drawn on a <canvas> in #random-faces.
//
// The server draws a seed's latents once, as centres and offsets (app.latent_parts): face i is
// centres[i] + T·offsets[i], FaceVAE.sample_latents' own formula, so the Temperature slider only
// changes the component's value in the page (fn=None) and the faces are decoded anew here, with
// no call to the server. Only the newest value is kept and one redraw runs at a time; #random-faces'
// data-draws counts the redraws done. Where the page cannot decode, the server draws the faces
// (app.RandomFaces' server function; drawing.js chooses).

import { drawPlanes, drawUrl } from './canvas.js';
import { loadDecoder } from './decoder.js';
import { canvasesIn, drawNewest } from './drawing.js';
import { loadRuntime } from './runtime.js';

export function float32s(base64) {
  // app.float32_text's numbers
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

export function latentsOf(value) {
  // app.random_latents: centres + T·offsets, in float32 as torch computes them
  const centers = float32s(value.centers), offsets = float32s(value.offsets), count = value.count;
  const dim = centers.length / count, t = Math.fround(value.temperature);
  return Array.from({ length: count }, (_, i) => Float32Array.from(
    { length: dim }, (_, j) => centers[i * dim + j] + Math.fround(t * offsets[i * dim + j])));
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
  let draws = 0;

  async function browserDraw() {
    if (!props.onnx_url) throw new Error('these weights ship no ONNX decoder');
    const decoder = await loadDecoder(await loadRuntime(props.runtime_url), props.onnx_url);
    return async (value) => {
      const shown = canvasesIn(box, value.count, props.size, 'random face');
      const faces = await decoder.decodeAll(latentsOf(value));
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
  drawNewest(element, props, watch, {
    note: element.querySelector('.random-mode'),
    inBrowser: browserDraw,
    browserNote: 'Drawn in this browser (WebAssembly): the temperature moves them here.',
    onServer: serverDraw,
    serverNote: (reason) => `Drawn on the server (${reason}).`,
    failed: 'Could not draw the faces',
    drawn: () => { box.dataset.draws = ++draws; },  // tests and the benchmark wait on this
  });
}
