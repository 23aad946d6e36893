// The Reconstruct tab in the page: a photo (file, drop, paste, camera snapshot or example) is
// aligned, encoded and refined here, and never sent. Where the page cannot run the models (no
// WebAssembly SIMD, a model that does not load), the photo goes to the server as it used to, and
// the note says so.

import { drawPlanes, drawUrl, psnr } from './canvas.js';
import { lazyPhotoPipeline, openPhoto, PhotoError, photoPipelineMissing } from './photo.js';
import { dataUrl, mountPicker } from './picker.js';
import { nextTask } from './runtime.js';

const STAYED = 'Your photo stayed in this browser.';

function markdownToHtml(text) {
  // the server's summaries: **bold** and Markdown's line breaks, nothing else
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return escaped.replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>').replace(/ {2}\n/g, '<br>');
}

export function summaryText(x, encoded, refined, box, size, steps) {
  // app.refined_summary, from the page's own figures
  const face = (y) => psnr(x, y, box, size).toFixed(2), whole = (y) => psnr(x, y).toFixed(2);
  return `**Error on the face** (brows to mouth): PSNR ${face(refined)} dB refined, ${face(encoded)} dB from the `
    + `encoder alone · **on the whole frame**: ${whole(refined)} dB refined, ${whole(encoded)} dB from the encoder `
    + `alone  \nRefined in ${steps} steps, which weigh the face most. The explorer and the morph start from this `
    + 'refined face.';
}

function drawDetections(canvas, bitmap, aligned) {
  // a thumbnail of the photo with each face's box, the chosen one in green
  const scale = Math.min(1, canvas.width / bitmap.width, canvas.height / bitmap.height);
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const g = canvas.getContext('2d');
  g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  g.lineWidth = 2;
  (aligned.faces ?? []).forEach((face, i) => {
    const [x0, y0, x1, y1] = face.box.map((v) => v * scale);
    g.strokeStyle = i === aligned.chosen ? '#22c55e' : '#f59e0b';
    g.strokeRect(x0, y0, x1 - x0, y1 - y0);
  });
}

export function mount(element, props, server) {
  const $ = (selector) => element.querySelector(selector);
  const faceNumber = $('.face-number'), note = $('.photo-note');
  const aligned = $('#reconstruct-aligned canvas'), refinedCanvas = $('#reconstruct-refined canvas');
  const detections = $('.detections canvas'), summary = $('.summary'), status = $('.status');
  const likenessButton = $('.likeness'), likeness = $('.likeness-result');
  let current = null, run = 0;
  const useServer = (reason) => {
    element.dataset.mode = 'server';
    note.textContent = `This browser cannot run the models (${reason}): photos are sent to the server.`;
  };
  // The models load on the block's first use (a click, a drop, a photo chosen), not with the page;
  // a photo chosen while they load waits for them: it must not go to the server meanwhile.
  const models = lazyPhotoPipeline(props, useServer);
  const missing = photoPipelineMissing(props);
  if (missing) {
    useServer(missing);
  } else {
    element.dataset.mode = 'browser';
    note.textContent = `${STAYED.replace('stayed', 'stays')} The face is found, aligned, encoded and refined here `
      + '(WebAssembly; the models load when you first choose a photo).';
    for (const event of ['pointerdown', 'focusin', 'dragenter']) element.addEventListener(event, models, { once: true });
  }

  const say = (text) => { status.textContent = text; };

  function reset() {
    refinedCanvas.dataset.refined = 'false';
    summary.innerHTML = '';
    likeness.textContent = '';
    likenessButton.hidden = true;
  }

  async function inPage(pipeline, blob, index, mine) {
    const bitmap = await openPhoto(blob, props.max_bytes);
    say('Finding the face…');
    const face = await pipeline.align(bitmap, index);
    if (mine !== run) return;
    drawDetections(detections, bitmap, face);
    drawPlanes(aligned, face.planes);
    const encoded = await pipeline.encode(face.planes);
    if (mine !== run) return;
    drawPlanes(refinedCanvas, encoded.image);
    say('Refining the latent for a closer likeness…');
    const steps = props.refinement.steps;
    const refined = await pipeline.refine(face.planes, encoded.z, (step) => {
      if (mine === run) say(`Refining the likeness: step ${step} of ${steps}`);
      return nextTask();  // lets the page paint the step
    });
    if (mine !== run) return;
    drawPlanes(refinedCanvas, refined.image);
    refinedCanvas.dataset.refined = 'true';
    summary.innerHTML = markdownToHtml(`${summaryText(face.planes, encoded.image, refined.image, props.face_box,
      props.image_size, steps)}  \n${face.message ?? ''}`);
    likenessButton.hidden = false;
    say(STAYED);
  }

  async function onServer(blob, index, mine) {
    say('Sending the photo to the server…');
    const result = await server.reconstruct_photo({ photo: await dataUrl(blob), face_number: index + 1 });
    if (mine !== run) return;
    if (result.error) throw new PhotoError(result.error);
    await Promise.all([drawUrl(aligned, result.aligned), drawUrl(refinedCanvas, result.reconstruction),
      drawUrl(detections, result.detections)]);
    refinedCanvas.dataset.refined = 'true';
    summary.innerHTML = markdownToHtml(result.summary);
    say('Your photo was sent to the server, which reconstructed it.');
  }

  async function reconstruct(blob) {
    if (!blob) return;
    current = blob;
    const mine = ++run, index = Math.max(1, Math.round(Number(faceNumber.value) || 1)) - 1;
    reset();
    try {
      say('Loading the models…');
      const pipeline = missing ? null : await models();
      await (pipeline ? inPage(pipeline, blob, index, mine) : onServer(blob, index, mine));
    } catch (error) {
      if (mine === run) say(error instanceof PhotoError ? error.message : `Could not reconstruct: ${error.message ?? error}`);
    }
  }

  likenessButton.addEventListener('click', async () => {
    likeness.textContent = 'Asking the server…';
    const result = await server.likeness({
      face: aligned.toDataURL('image/png'), reconstruction: refinedCanvas.toDataURL('image/png'),
    });
    likeness.textContent = result.error ?? result.verdict;  // app.likeness_text's words
  });
  faceNumber.addEventListener('change', () => reconstruct(current));  // another face of the same photo
  mountPicker(element, reconstruct, { paste: true });
}
