// Finding a face and its 68 landmarks in the page, so a photo never leaves the browser.
//
// The networks are face-api's (@vladmandic/face-api, MIT): its tiny face detector and its 68-point
// landmark net, converted to ONNX by train/convert_face_api.py (vendor/face-api/README.md) and run
// with ONNX Runtime Web. The steps around them are face-api's own, in the browser (its
// TinyYolov2Base.detect, extractFaces and FaceLandmark68NetBase.postProcess):
//   detect:    the photo scaled so its longer side is inputSize, drawn at the top left of a black
//              inputSize² canvas (drawImage resamples) -> the grid -> boxes: a sigmoid on x, y and
//              the score, exp on w and h times the anchor, scores above scoreThreshold, then
//              non-maximum suppression at IoU 0.4, the highest score first.
//   landmarks: the box's pixels (floored, clipped to the photo) scaled so the longer side is 112
//              and centred on a black 112² canvas -> 68 points relative to that square -> pixels.
// The networks subtract face-api's mean colours and divide by 255 themselves.

import { makeCanvas, sizeOf } from './canvas.js';
import { fileUrl, loadSession } from './runtime.js';

// margin: black added around the photo on every side, as a fraction of its longer side, before
// detecting (not face-api's: 0 is its behaviour). The tiny detector misses many faces that fill
// the frame; photo.js looks again with a margin where it finds none (DETECTION_RETRIES).
export const DETECTOR_DEFAULTS = { inputSize: 416, scoreThreshold: 0.5, iouThreshold: 0.4, margin: 0 };
const LANDMARK_SIZE = 112;
// tinyFaceDetector/const.ts: the anchors' widths and heights, in grid cells
const ANCHORS = [[1.603231, 2.094468], [6.041143, 7.080126], [2.882459, 3.518061], [4.266906, 5.178857],
  [9.041765, 10.66308]];

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

function drawable(source) {
  // drawImage takes canvases, images, bitmaps and video frames, but not ImageData
  if (typeof ImageData === 'function' && source instanceof ImageData) {
    const canvas = makeCanvas(source.width, source.height);
    canvas.getContext('2d').putImageData(source, 0, 0);
    return canvas;
  }
  return source;
}

function toPlanes(canvas) {
  // the canvas's RGB as 1×3×H×W float32 pixels in 0..255 (transparent pixels read as black, as
  // tf.browser.fromPixels reads them)
  const { width, height } = canvas;
  const rgba = canvas.getContext('2d', { willReadFrequently: true }).getImageData(0, 0, width, height).data;
  const planes = new Float32Array(3 * width * height), n = width * height;
  for (let i = 0; i < n; i++) {
    planes[i] = rgba[4 * i];
    planes[n + i] = rgba[4 * i + 1];
    planes[2 * n + i] = rgba[4 * i + 2];
  }
  return planes;
}

function iou(a, b) {
  const width = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const height = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = width * height;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

export function nonMaxSuppression(candidates, iouThreshold) {
  // ops/nonMaxSuppression.ts: the best first; drop every box overlapping a kept one by more
  const left = [...candidates].sort((a, b) => b.score - a.score), kept = [];
  while (left.length) {
    const best = left.shift();
    kept.push(best);
    for (let i = left.length - 1; i >= 0; i--) {
      if (iou(best.relative, left[i].relative) > iouThreshold) left.splice(i, 1);
    }
  }
  return kept;
}

export function decodeGrid(grid, cells, reshaped, inputSize, scoreThreshold) {
  // TinyYolov2Base.extractBoxes: grid is 25×cells×cells (channel 5a+k: anchor a's x, y, w, h,
  // score); boxes relative to the photo (reshaped: the photo's size on the input canvas, rounded)
  const [correctX, correctY] = [inputSize / reshaped[0], inputSize / reshaped[1]], area = cells * cells;
  const at = (anchor, k, row, col) => grid[(5 * anchor + k) * area + row * cells + col];
  const found = [];
  for (let row = 0; row < cells; row++) {
    for (let col = 0; col < cells; col++) {
      for (let anchor = 0; anchor < ANCHORS.length; anchor++) {
        const score = sigmoid(at(anchor, 4, row, col));
        if (score <= scoreThreshold) continue;
        const cx = ((col + sigmoid(at(anchor, 0, row, col))) / cells) * correctX;
        const cy = ((row + sigmoid(at(anchor, 1, row, col))) / cells) * correctY;
        const w = ((Math.exp(at(anchor, 2, row, col)) * ANCHORS[anchor][0]) / cells) * correctX;
        const h = ((Math.exp(at(anchor, 3, row, col)) * ANCHORS[anchor][1]) / cells) * correctY;
        found.push({ relative: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], score });
      }
    }
  }
  return found;
}

export function cropOf(box, width, height) {
  // extractFaces: the box floored (x, y, width, height each) and clipped to the photo
  const x = Math.floor(box[0]), y = Math.floor(box[1]);
  const right = x + Math.floor(box[2] - box[0]), bottom = y + Math.floor(box[3] - box[1]);
  const x0 = Math.max(x, 0), y0 = Math.max(y, 0);
  return [x0, y0, Math.floor(Math.min(right - x0, width - x0)), Math.floor(Math.min(bottom - y0, height - y0))];
}

export async function loadFaceFinder(ort, modelsUrl, options = {}) {
  const [detector, landmarker] = await Promise.all([
    loadSession(ort, fileUrl(modelsUrl, 'tiny_face_detector.onnx')), loadSession(ort, fileUrl(modelsUrl, 'face_landmark_68.onnx')),
  ]);
  const defaults = { ...DETECTOR_DEFAULTS, ...options };

  async function detect(source, detectOptions = {}) {
    const { inputSize, scoreThreshold, iouThreshold, margin } = { ...defaults, ...detectOptions };
    if (!(inputSize > 0 && inputSize % 32 === 0)) throw new Error(`inputSize must be a multiple of 32, not ${inputSize}`);
    const image = drawable(source), [width, height] = sizeOf(image);
    if (!(width > 0 && height > 0)) return [];
    const pad = Math.round(margin * Math.max(width, height)), paddedWidth = width + 2 * pad, paddedHeight = height + 2 * pad;
    // imageToSquare: scaled (not rounded) to inputSize on the longer side, at the top left
    const scale = inputSize / Math.max(paddedWidth, paddedHeight);
    const canvas = makeCanvas(inputSize, inputSize);
    canvas.getContext('2d').drawImage(image, pad * scale, pad * scale, width * scale, height * scale);
    const input = new ort.Tensor('float32', toPlanes(canvas), [1, 3, inputSize, inputSize]);
    const { grid } = await detector.run({ image: input });
    const reshaped = [Math.round(paddedWidth * scale), Math.round(paddedHeight * scale)];  // computeReshapedDimensions
    const found = decodeGrid(grid.data, grid.dims[2], reshaped, inputSize, scoreThreshold);
    return nonMaxSuppression(found, iouThreshold).map(({ relative: [x0, y0, x1, y1], score }) => ({
      box: [x0 * paddedWidth - pad, y0 * paddedHeight - pad, x1 * paddedWidth - pad, y1 * paddedHeight - pad], score,
    }));
  }

  async function landmarks(source, box) {
    const image = drawable(source), [width, height] = sizeOf(image);
    const [x0, y0, w, h] = cropOf(box, width, height);
    if (!(w > 0 && h > 0)) throw new Error('the box is outside the photo');
    // the crop on a canvas of its own first, as extractFaces does: resampling it then never
    // blends in pixels from beyond the box
    const crop = makeCanvas(w, h);
    crop.getContext('2d').drawImage(image, x0, y0, w, h, 0, 0, w, h);
    // imageToSquare, centred
    const scale = LANDMARK_SIZE / Math.max(w, h), sw = w * scale, sh = h * scale;
    const padX = sw < sh ? (sh - sw) / 2 : 0, padY = sh < sw ? (sw - sh) / 2 : 0;
    const square = makeCanvas(LANDMARK_SIZE, LANDMARK_SIZE);
    square.getContext('2d').drawImage(crop, padX, padY, sw, sh);
    const input = new ort.Tensor('float32', toPlanes(square), [1, 3, LANDMARK_SIZE, LANDMARK_SIZE]);
    const { landmarks: out } = await landmarker.run({ image: input });
    // postProcess: relative to the crop, then into the photo. face-api shifts by the detection's
    // unfloored corner; this shifts by the crop's, where the crop really starts.
    return Array.from({ length: 68 }, (_, i) => [
      x0 + ((out.data[2 * i] * LANDMARK_SIZE - padX) / sw) * w,
      y0 + ((out.data[2 * i + 1] * LANDMARK_SIZE - padY) / sh) * h,
    ]);
  }

  return { detect, landmarks };
}
