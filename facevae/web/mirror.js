// The live mirror in the page: each camera frame is aligned, encoded and decoded here, and no frame
// is sent. Only the newest frame is worked on: a slow machine shows fewer faces, never old ones.
// Where the page cannot run the models, frames go to the server as they used to, and the start
// button and the note say so.

import { drawPlanes, drawUrl, psnr } from './canvas.js';
import { lazyPhotoPipeline, photoPipelineMissing } from './photo.js';
import { nextTask } from './runtime.js';

// The detector's input for a camera frame. A person at their camera fills much of it: 320 px finds
// faces from about 60 px wide in a 640×480 frame (416 px, the photos', from about 47), and aligns
// the same face in 43 ms instead of 54 (Intel Xeon); 224 px missed a face 80 px wide.
const MIRROR_DETECTION = { inputSize: 320 };

export function mount(element, props, server) {
  const $ = (selector) => element.querySelector(selector);
  const start = $('.start'), stop = $('.stop'), video = $('video'), status = $('.status');
  const faceCanvas = $('#mirror-face canvas'), reconstruction = $('#mirror-reconstruction');
  const output = reconstruction.querySelector('canvas');
  const frame = document.createElement('canvas');
  let pipeline = null, stream = null, frames = 0;
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

  async function inPage(frame) {
    const face = await pipeline.align(frame, 0, MIRROR_DETECTION);
    const { image } = await pipeline.encode(face.planes);
    drawPlanes(faceCanvas, face.planes);
    drawPlanes(output, image);
    return face.found ? `PSNR ${psnr(face.planes, image).toFixed(1)} dB · no frame leaves this browser`
      : 'No face in view: showing the middle of the picture.';
  }

  async function onServer(frame) {
    const result = await server.mirror_frame(frame.toDataURL('image/jpeg', 0.9));
    if (result.error) return result.error;
    await Promise.all([drawUrl(faceCanvas, result.face), drawUrl(output, result.reconstruction)]);
    return `${result.status} · each frame is sent to the server`;
  }

  async function loop() {
    while (stream) {
      const width = Math.min(video.videoWidth, props.mirror_side);
      if (!width) {
        await new Promise(requestAnimationFrame);
        continue;
      }
      frame.width = width;
      frame.height = Math.round(video.videoHeight * width / video.videoWidth);
      frame.getContext('2d').drawImage(video, 0, 0, frame.width, frame.height);
      const text = await (pipeline ? inPage(frame) : onServer(frame));
      if (!stream) break;
      reconstruction.dataset.frames = ++frames;
      status.textContent = text;
      // The runtime answers within the same task: without a pause the page would never paint,
      // nor take a click on Stop.
      await nextTask();
    }
  }

  start.addEventListener('click', async () => {
    if (stream) return;
    if (!missing) {
      status.textContent = 'Loading the models…';
      pipeline = await models();  // frames go to the server only where the page cannot run the models
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
    video.srcObject = null;
    start.disabled = false;
    stop.disabled = true;
  }
  stop.addEventListener('click', stopCamera);
}
