// What the blocks that draw their value share (face.js's face, random.js's faces, morph_strip.js's
// strip and GIF): the value is drawn in the page with ONNX Runtime Web, or, where the page cannot
// run the models (no WebAssembly SIMD, no ONNX file, the runtime fails to load), by the block's
// server function. Either way only the newest value is kept and one drawing runs at a time, at
// most one started per animation frame: a slider dragged faster than faces are drawn skips to
// where it is now.

import { firstShown } from './runtime.js';

export function drawNewest(element, props, watch, how) {
  // how: {note: the element that says where the drawing is done,
  //       inBrowser(): the page's drawing function, (value) => Promise, once it can draw (throws where it cannot),
  //       browserNote: the note then,
  //       onServer: the drawing function where the page cannot, (value) => Promise,
  //       serverNote(reason): the note then,
  //       failed: the note's start when a drawing fails,
  //       drawn(): called after each drawing,
  //       loadOnValue: start loading at the first value too (a button's), not only once the block is seen}
  // element.dataset.mode says which: 'browser' or 'server'. Returns {redraw()}: draws the value
  // again (Gradio calls watch only when a value differs from the last).
  let draw = null, pending = null, busy = false, valueCame;
  const firstValue = new Promise((resolve) => { valueCame = resolve; });

  async function drawPending() {
    if (busy || pending === null || draw === null) return;
    const value = pending;
    pending = null;
    busy = true;
    try {
      await draw(value);
      how.drawn();
    } catch (error) {
      how.note.textContent = `${how.failed}: ${error.message ?? error}`;
    } finally {
      busy = false;
      if (pending !== null) requestAnimationFrame(drawPending);
    }
  }

  function show(value) {
    if (!value) return;
    pending = value;
    valueCame();
    requestAnimationFrame(drawPending);
  }

  watch('value', () => show(props.value));
  const start = how.loadOnValue ? Promise.race([firstShown(element), firstValue]) : firstShown(element);
  start.then(how.inBrowser).then((browserDraw) => {
    element.dataset.mode = 'browser';
    how.note.textContent = how.browserNote;
    draw = browserDraw;
  }).catch((error) => {
    element.dataset.mode = 'server';
    how.note.textContent = how.serverNote(error.message ?? String(error));
    draw = how.onServer;
  }).finally(() => show(pending ?? props.value));
  return { redraw: () => show(props.value) };
}

export function canvasesIn(box, count, size, label) {
  // exactly `count` canvases of size×size in the box, each named `${label} ${i}` for screen readers
  while (box.children.length > count) box.lastChild.remove();
  while (box.children.length < count) {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = size;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${label} ${box.children.length + 1}`);
    box.append(canvas);
  }
  return [...box.children];
}
