// Canvases: the ones the page works on offscreen, and faces between the models' planes (Float32Array
// 3×H×W in [0, 1], as torch's N×C×H×W) and the canvases that show them.

export function makeCanvas(width, height) {
  // an offscreen canvas where the browser has them: work that is never shown
  if (typeof OffscreenCanvas === 'function') return new OffscreenCanvas(width, height);
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

export function sizeOf(source) {
  // the pixel size of an <img>, <video>, VideoFrame, ImageBitmap, canvas or ImageData
  return [source.naturalWidth || source.videoWidth || source.displayWidth || source.width,
    source.naturalHeight || source.videoHeight || source.displayHeight || source.height];
}

export function drawPlanes(canvas, planes) {
  // ImageData is a Uint8ClampedArray: it clamps to 0…255 and rounds half to even, as
  // facevae.preprocess.to_image does with torch.round
  const g = canvas.getContext('2d'), size = canvas.width * canvas.height;
  const image = g.createImageData(canvas.width, canvas.height), rgba = image.data;
  for (let p = 0; p < size; p++) {
    rgba[4 * p] = planes[p] * 255;
    rgba[4 * p + 1] = planes[size + p] * 255;
    rgba[4 * p + 2] = planes[2 * size + p] * 255;
    rgba[4 * p + 3] = 255;
  }
  g.putImageData(image, 0, 0);
}

export function canvasPlanes(canvas) {
  // drawPlanes' inverse: the canvas's RGB as planes in [0, 1]
  const { width, height } = canvas, size = width * height;
  const rgba = canvas.getContext('2d', { willReadFrequently: true }).getImageData(0, 0, width, height).data;
  const planes = new Float32Array(3 * size);
  for (let p = 0; p < size; p++) {
    planes[p] = rgba[4 * p] / 255;
    planes[size + p] = rgba[4 * p + 1] / 255;
    planes[2 * size + p] = rgba[4 * p + 2] / 255;
  }
  return planes;
}

export function warpedCanvas(source, transform, width, height) {
  // a width×height canvas of source seen through transform ([[a, c, e], [b, d, f]]: source point
  // -> canvas point, pixel corners at whole numbers), drawn by the browser (bilinear, smoothed
  // when shrinking); beyond the source it stays transparent
  const canvas = makeCanvas(width, height), g = canvas.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingQuality = 'high';
  g.setTransform(transform[0][0], transform[1][0], transform[0][1], transform[1][1], transform[0][2], transform[1][2]);
  g.drawImage(source, 0, 0);
  return canvas;
}

export async function drawUrl(canvas, url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  canvas.getContext('2d').drawImage(image, 0, 0, canvas.width, canvas.height);
}

export function psnr(x, y, box = null, size = 0) {
  // facevae.metrics.psnr over all of x and y (planes), or facevae.metrics.face_psnr over box
  // [left, top, right, bottom] of size×size planes
  let sum = 0, count = 0;
  for (let i = 0; i < x.length; i++) {
    if (box) {
      const row = Math.floor(i / size) % size, column = i % size;
      if (row < box[1] || row >= box[3] || column < box[0] || column >= box[2]) continue;
    }
    sum += (x[i] - y[i]) ** 2;
    count++;
  }
  return -10 * Math.log10(Math.max(sum / count, 1e-10));
}
