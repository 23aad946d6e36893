// "Start from a photo" in the explorer and the morph: the photo is aligned, encoded and refined in
// the page, and only its latent becomes the component's value (what a share link carries too).
// Where the page cannot run the models, the photo goes to the server for its latent, and the
// note says so.

import { drawPlanes, drawUrl } from './canvas.js';
import { lazyPhotoPipeline, openPhoto, PhotoError, photoPipelineMissing } from './photo.js';
import { dataUrl, mountPicker } from './picker.js';

export function mount(element, props, server, watch, trigger) {
  const thumbnail = element.querySelector('canvas'), note = element.querySelector('.photo-note');
  const input = element.querySelector('input[type=file]');
  let run = 0;
  const useServer = (reason) => {
    note.textContent = `This browser cannot run the models (${reason}): a photo is sent to the server.`;
  };
  // the face finder, encoder and decoder load when a photo is first chosen: the explorer's face
  // alone needs none of them but the decoder
  const models = lazyPhotoPipeline(props, useServer);
  const missing = photoPipelineMissing(props);
  if (missing) useServer(missing);
  else note.textContent = 'Your photo stays in this browser: only its latent is used.';

  async function inPage(pipeline, blob) {
    const face = await pipeline.align(await openPhoto(blob, props.max_bytes), 0);
    drawPlanes(thumbnail, face.planes);
    note.textContent = 'Refining the latent…';
    const encoded = await pipeline.encode(face.planes);
    const refined = await pipeline.refine(face.planes, encoded.z);
    return { z: Array.from(refined.z), note: 'Your photo stayed in this browser: only its latent is used.' };
  }

  async function onServer(blob) {
    note.textContent = 'Sending the photo to the server…';
    const result = await server.photo_latent(await dataUrl(blob));
    if (result.error) throw new PhotoError(result.error);
    await drawUrl(thumbnail, result.face);
    return { z: result.z, note: 'Your photo was sent to the server, which found its latent.' };
  }

  async function choose(blob) {
    if (!blob) return;
    const mine = ++run;
    try {
      const pipeline = missing ? null : await models();
      const { z, note: text } = await (pipeline ? inPage(pipeline, blob) : onServer(blob));
      if (mine !== run) return;
      note.textContent = text;
      props.value = { z };
      trigger('change');
    } catch (error) {
      if (mine === run) note.textContent = error instanceof PhotoError ? error.message : `Could not use this photo: ${error.message ?? error}`;
    }
  }

  watch('value', () => {
    if (props.value) return;
    input.value = '';  // the server chose another face (a seed): the photo is dropped
    thumbnail.getContext('2d').clearRect(0, 0, thumbnail.width, thumbnail.height);
  });
  mountPicker(element, choose);
}
