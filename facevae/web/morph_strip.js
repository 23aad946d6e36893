// The Morph tab's strip and animated GIF, made in the page: "Make strip and GIF" sets this block's
// value in the page ({a, b, method} of the blend and the Frames slider's count: no request), the
// frames' latents are computed as facevae.pipeline.FacePipeline.morph_frames does (face.js's
// interpolations at torch.linspace's t's), decoded with ONNX Runtime Web, drawn one <canvas> each
// in #morph-strip, and encoded as a GIF here (the vendored gifenc) with animated_gif's frames,
// delay and loop: an <img> in #morph-gif, its blob: URL also the download link's. Where the page
// cannot decode, the server makes both (app.MorphStrip's server function) and they are shown the
// same way. #morph-strip's data-draws counts the strips done.
//
// A GIF frame has at most 256 colours: each frame gets its own palette (gifenc's PnnQuant), so it
// differs from its canvas by that rounding alone; tests/test_morph_gif_js.py bounds it.

import { drawPlanes, drawUrl } from './canvas.js';
import { loadDecoder } from './decoder.js';
import { canvasesIn, drawNewest } from './drawing.js';
import { INTERPOLATIONS } from './face.js';
import { loadRuntime, nextTask } from './runtime.js';
import { GIFEncoder, applyPalette, quantize } from './vendor/gifenc/gifenc.esm.js';

export function frameTimes(frames) {
  // torch.linspace(0, 1, max(2, frames)), to float32's rounding (which torch's own depends on the
  // CPU's vector width)
  const n = Math.max(2, frames);
  return Array.from({ length: n }, (_, i) => i / (n - 1));
}

export function frameLatents(value) {
  // morph_frames' latents: the interpolation at each frame's t
  return frameTimes(value.frames).map((t) => INTERPOLATIONS[value.method](value.a, value.b, t));
}

export function frameDelay(frames, seconds) {
  // animated_gif's duration of a frame in ms, as Pillow writes it: in whole hundredths of a second
  return 10 * Math.floor(Math.max(20, Math.floor((1000 * seconds) / frames)) / 10);
}

export async function animatedGif(images, delay) {
  // facevae.pipeline.animated_gif: the frames (ImageData) forwards, then back when there are more
  // than two, looping forever; each distinct frame quantized once. -> the GIF's bytes
  const indexed = [];
  for (const { data } of images) {
    const palette = quantize(data, 256);
    indexed.push({ palette, index: applyPalette(data, palette) });
    await nextTask();  // the page stays responsive between frames
  }
  const forwards = [...images.keys()];
  const order = images.length > 2 ? [...forwards, ...forwards.slice(1, -1).reverse()] : forwards;
  const { width, height } = images[0], gif = GIFEncoder();
  for (const i of order) gif.writeFrame(indexed[i].index, width, height, { palette: indexed[i].palette, delay, repeat: 0 });
  gif.finish();
  return gif.bytes();
}

export function mount(element, props, server, watch) {
  const strip = element.querySelector('#morph-strip'), image = element.querySelector('#morph-gif img');
  const download = element.querySelector('.gif-download');
  let strips = 0, gifUrl = null;

  async function showGif(url) {
    if (gifUrl?.startsWith('blob:')) URL.revokeObjectURL(gifUrl);
    gifUrl = image.src = download.href = url;
    await image.decode();
    image.hidden = download.hidden = false;
  }

  async function browserDraw() {
    if (!props.onnx_url) throw new Error('these weights ship no ONNX decoder');
    const decoder = await loadDecoder(await loadRuntime(props.runtime_url), props.onnx_url);
    return async (value) => {
      const latents = frameLatents(value), shown = canvasesIn(strip, latents.length, props.size, 'morph frame');
      (await decoder.decodeAll(latents)).forEach((planes, i) => drawPlanes(shown[i], planes));
      const images = shown.map((canvas) => canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height));
      const gif = await animatedGif(images, frameDelay(images.length, props.gif_seconds));
      await showGif(URL.createObjectURL(new Blob([gif], { type: 'image/gif' })));
    };
  }

  async function serverDraw(value) {
    const answer = await server.morph_strip(value);
    if (answer.error) throw new Error(answer.error);
    const shown = canvasesIn(strip, answer.frames.length, props.size, 'morph frame');
    await Promise.all(answer.frames.map((png, i) => drawUrl(shown[i], png)));
    await showGif(answer.gif);
  }

  drawNewest(element, props, watch, {
    note: element.querySelector('.strip-mode'),
    inBrowser: browserDraw,
    browserNote: 'Made in this browser (WebAssembly).',
    onServer: serverDraw,
    serverNote: (reason) => `Made on the server (${reason}).`,
    failed: 'Could not make the strip',
    drawn: () => { strip.dataset.draws = ++strips; },  // tests wait on this
    loadOnValue: true,  // its value comes from a button, when the block may still be out of sight
  });
}
