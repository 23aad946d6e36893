// The live mirror in the page: each camera frame is aligned, encoded and decoded here, and no frame
// is sent. The face is followed from frame to frame (track.js), and reconstructed in a worker
// (reconstruct_worker.js) while the page aligns the next frame: two cores, two faces at once. Only
// the newest frame is worked on: a slow machine shows fewer faces, never old ones. Where the page
// cannot run the models, frames go to the server as they used to, and the start button and the
// note say so.

import { drawPlanes, drawUrl, psnr } from './canvas.js';
import { lazyPhotoPipeline, photoPipelineMissing } from './photo.js';
import { nextTask } from './runtime.js';
import { faceTracker } from './track.js';

// The detector's input for a camera frame. A person at their camera fills much of it: 320 px finds
// faces from about 60 px wide in a 640×480 frame (416 px, the photos', from about 47), and aligns
// the same face in 43 ms instead of 54 (Intel Xeon); 224 px missed a face 80 px wide.
const MIRROR_DETECTION = { inputSize: 320 };

function workerReconstruction(props) {
  // -> the promise of reconstruct(planes) -> the reconstruction's planes, run in a worker; rejects
  // where the worker cannot start or load the models. One face at a time.
  const absolute = (url) => new URL(url, location.href).href;  // the worker's own address is elsewhere
  const worker = new Worker(new URL('./reconstruct_worker.js', import.meta.url), { type: 'module' });
  let waiting = null;
  return new Promise((resolve, reject) => {
    const fail = (message) => (waiting ? waiting.reject : reject)(new Error(message));
    worker.onerror = (event) => fail(event.message || 'the worker stopped');
    worker.onmessage = ({ data }) => {
      if (data.error) return fail(data.error);
      if (data.ready) return resolve((planes) => new Promise((done, failed) => {
        waiting = { resolve: done, reject: failed };
        worker.postMessage({ planes });
      }));
      waiting.resolve(data.image);
    };
    worker.postMessage({ runtimeUrl: absolute(props.runtime_url), encoderUrl: absolute(props.onnx_urls.encoder),
      decoderUrl: absolute(props.onnx_urls.decoder) });
  });
}

function cameraFrames(video) {
  // {next(), release()}: next resolves at once when the camera has shown a frame since the last
  // call, else at its next frame: a face is never worked out twice from the same frame (a camera
  // at 30 frames a second gives at most 30 faces), nor waited for when one is there. release lets
  // a waiting next go when the camera stops (its loop then ends, and a new Start runs one loop).
  if (!('requestVideoFrameCallback' in video)) return { next: () => Promise.resolve(), release: () => {} };
  let shown = 0, taken = 0, waiting = null;
  const onFrame = () => {
    shown++;
    waiting?.();
    waiting = null;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  return {
    async next() {
      if (shown === taken) await new Promise((resolve) => { waiting = resolve; });
      taken = shown;
    },
    release() {
      waiting?.();
      waiting = null;
    },
  };
}

export function mount(element, props, server) {
  const $ = (selector) => element.querySelector(selector);
  const start = $('.start'), stop = $('.stop'), video = $('video'), status = $('.status');
  const faceCanvas = $('#mirror-face canvas'), reconstruction = $('#mirror-reconstruction');
  const output = reconstruction.querySelector('canvas');
  const frame = document.createElement('canvas');
  // read back every frame: kept in memory, not on the GPU, where each read would wait for it
  const frameContext = frame.getContext('2d', { willReadFrequently: true });
  let pipeline = null, align = null, reconstruct = null, stream = null, frames = 0, detections = 0;
  const useServer = (reason) => {
    element.dataset.mode = 'server';
    start.textContent = 'Start (frames go to the server)';
    status.textContent = `This browser cannot run the models (${reason}): the mirror sends each frame to the server.`;
  };
  const models = lazyPhotoPipeline(props, useServer);  // loaded on Start
  const missing = photoPipelineMissing(props);
  if (missing) {
    useServer(missing);
  } else {
    element.dataset.mode = 'browser';
    status.textContent = 'Press Start: your face, aligned and reconstructed in this browser as you move. No frame is sent.';
  }

  function show(face, image) {
    drawPlanes(faceCanvas, face.planes);
    drawPlanes(output, image);
    reconstruction.dataset.frames = ++frames;
    status.textContent = face.found ? `PSNR ${psnr(face.planes, image).toFixed(1)} dB · no frame leaves this browser`
      : 'No face in view: showing the middle of the picture.';
  }

  async function onServer(frame) {
    const result = await server.mirror_frame(frame.toDataURL('image/jpeg', 0.9));
    if (result.error) {
      status.textContent = result.error;
      return;
    }
    await Promise.all([drawUrl(faceCanvas, result.face), drawUrl(output, result.reconstruction)]);
    reconstruction.dataset.frames = ++frames;
    status.textContent = `${result.status} · each frame is sent to the server`;
  }

  const newFrames = cameraFrames(video);

  async function loop() {
    let reconstructing = Promise.resolve();  // the face before this frame's, in the worker
    while (stream) {
      await newFrames.next();
      const width = Math.min(video.videoWidth, props.mirror_side);
      if (!width) {
        await new Promise(requestAnimationFrame);
        continue;
      }
      frame.width = width;
      frame.height = Math.round(video.videoHeight * width / video.videoWidth);
      frameContext.drawImage(video, 0, 0, frame.width, frame.height);
      if (pipeline) {
        const face = await align(frame, performance.now());
        if (face.detected) reconstruction.dataset.detections = ++detections;
        await reconstructing;
        if (!stream) break;
        reconstructing = reconstruct(face.planes).then((image) => stream && show(face, image));
      } else {
        await onServer(frame);
      }
      // The runtime answers within the same task: without a pause the page would never paint,
      // nor take a click on Stop.
      await nextTask();
    }
    await reconstructing;
  }

  async function loadModels() {
    pipeline = await models();  // frames go to the server only where the page cannot run the models
    if (!pipeline) return;
    align = faceTracker(pipeline, props.template, { detection: MIRROR_DETECTION });
    // the worker once for the page; where it cannot run, the page reconstructs between frames
    reconstruct ??= await workerReconstruction(props).catch(
      () => async (planes) => (await pipeline.encode(planes)).image);
  }

  start.addEventListener('click', async () => {
    if (stream) return;
    if (!missing) {
      status.textContent = 'Loading the models…';
      await loadModels();
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      status.textContent = `The camera did not start: ${error.message ?? error}`;
      return;
    }
    video.srcObject = stream;
    await video.play();
    start.disabled = true;
    stop.disabled = false;
    loop().catch((error) => {
      stopCamera();
      status.textContent = `The mirror stopped: ${error.message ?? error}`;
    });
  });

  function stopCamera() {
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    newFrames.release();
    video.srcObject = null;
    start.disabled = false;
    stop.disabled = true;
  }
  stop.addEventListener('click', stopCamera);
}
