// A photo's face, found, aligned, encoded and refined in the page: the photo never leaves the browser.
// The same steps as facevae.pipeline.FacePipeline.reconstruct and refined_reconstruction, with
// detect.js (face-api's detector and 68 landmarks, as ONNX), align.js (facevae.align's geometry) and
// refine.js (the encoder, and Adam through the decoder's vector-Jacobian product).

import { alignFace } from './align.js';
import { loadFaceFinder } from './detect.js';
import { loadRefiner } from './refine.js';
import { loadRuntime, missingSupport } from './runtime.js';

// Where the detector finds no face on the photo as it is, it looks again with a black border around
// it (detect.js's margin, a share of the longer side; facevae.align's hidden margin), which shrinks
// a face that fills the frame to the sizes the tiny detector knows. Chosen on 50 val photos of
// CelebA (train.studies.measure_align_js --face-api): as they are, face-api's detector found 39 of
// the aligned images, 48 of them pasted into bigger rolled photos and 15 of them cut close as
// headshots; with these two retries 50, 49 and 50 (a border of 0.5 at 416 px found 15 headshots,
// at 320 px 48). Only when a try finds nothing: a small face in a big frame shrinks with the border.
const DETECTION_RETRIES = [{ margin: 0.25 }, { margin: 0.75, inputSize: 320 }];

export class PhotoError extends Error {}

export async function openPhoto(blob, maxBytes) {
  // facevae.photo.load_photo's checks, and EXIF orientation applied as it does
  if (blob.size > maxBytes) {
    throw new PhotoError(`The file is ${Math.round(blob.size / 2 ** 20)} MB; the limit is ${Math.round(maxBytes / 2 ** 20)} MB.`);
  }
  try {
    return await createImageBitmap(blob, { imageOrientation: 'from-image' });
  } catch {
    throw new PhotoError('This file is not an image this browser can read (try a JPEG, PNG or WebP photo).');
  }
}

export async function findFaces(finder, source, detection = {}) {
  // detect.js's faces on the photo as it is, else with each of DETECTION_RETRIES in turn
  let faces = await finder.detect(source, detection);
  for (const retry of DETECTION_RETRIES) {
    if (faces.length) break;
    faces = await finder.detect(source, { ...detection, ...retry });
  }
  return faces;
}

const pipelines = new Map();  // the models' URLs -> the promise of their pipeline: the page's blocks share one

export function photoPipelineMissing(props) {
  // why the page cannot turn a photo into a latent itself, or null; known before anything loads
  const model = ['encoder', 'decoder'].find((name) => !props.onnx_urls[name]);
  return model ? `these weights ship no ONNX ${model}` : missingSupport();
}

export function loadPhotoPipeline(props) {
  // Everything the page needs to turn a photo into a latent, loaded when a block first needs it;
  // rejects (and the caller falls back to the server) when this browser or these weights cannot
  const key = JSON.stringify([props.runtime_url, props.face_models_url, props.onnx_urls]);
  if (!pipelines.has(key)) pipelines.set(key, photoPipeline(props));
  return pipelines.get(key);
}

export function lazyPhotoPipeline(props, onFailure) {
  // () => the promise of the pipeline, or of null where the page cannot run the models (said by
  // onFailure(reason) once): called on a block's first use, so a tab loads its models when used
  let loading = null;
  return () => {
    loading ??= loadPhotoPipeline(props).catch((error) => {
      onFailure(error.message ?? String(error));
      return null;
    });
    return loading;
  };
}

async function photoPipeline(props) {
  const missing = photoPipelineMissing(props);
  if (missing) throw new Error(missing);
  const ort = await loadRuntime(props.runtime_url);
  const { encoder, decoder } = props.onnx_urls;
  const [finder, refiner] = await Promise.all([loadFaceFinder(ort, props.face_models_url),
    loadRefiner(ort, { encoderUrl: encoder, decoderUrl: decoder })]);
  const size = props.image_size;

  const placeLandmarks = (canvas, box) => finder.landmarks(canvas, box);
  const alignFound = (source, faces, options = {}) => alignFace(source, faces, placeLandmarks, props.template,
    { size, ...options });

  return {
    async align(bitmap, faceIndex = 0, detection = {}) {
      // -> align.js's result: {planes, face (ImageData), found, faces, chosen, message, ...};
      // detection: detect.js's options (the detector's inputSize)
      return alignFound(bitmap, await findFaces(finder, bitmap, detection), { faceIndex });
    },
    // the two halves of align, for track.js: the faces found, and a face aligned from its box or
    // landmarks (alignFace's options: rounds, faceIndex); and the landmark net alone
    detect: (source, detection = {}) => findFaces(finder, source, detection),
    alignFound,
    placeLandmarks,
    async encode(planes) {
      const z = await refiner.encode(planes);
      return { z, image: await refiner.decode(z) };
    },
    refine: (planes, z0, onStep) => refiner.refine(planes, z0, props.refinement, onStep),
  };
}
