// A photo's face warped onto CelebA's framing in the page: facevae.align's geometry, after the
// landmarks (detect.js finds the faces and places the 68 landmarks; this file does the rest).
//
//   fivePoints, similarity    facevae.align.five_points and similarity (a closed-form least squares)
//   fitToTemplate             the refit rounds: the face warped into CelebA's 178×218 frame and its
//                             landmarks placed again there, from the template's box
//   warp                      cv2.warpAffine (INTER_LINEAR, replicated border) bit for bit: OpenCV's
//                             fixed point (coordinates in 1/32 px, weights in 1/1024), after the same
//                             area-averaged shrink (cv2.resize INTER_AREA) of the part of a big photo
//                             it reads
//   completeFrame             complete_frame: beyond the photo its edge pixels repeat, blurred by a
//                             growing σ (OpenCV's Gaussian kernels, the same σ ladder, the same
//                             shrink-blur-enlarge past σ 2, an exact Euclidean distance transform),
//                             plus the photo's grain
//   cropCeleba                facevae.preprocess.crop_celeba: Pillow's antialiased BILINEAR resample
//                             of the centred square (rows 20–197), in Pillow's own fixed point
//   rankFaces                 facevae.align.rank
//   alignFace                 align_face after the detector: every face fitted, ranked, the chosen
//                             one completed and cut; no face: the centre square as crop_square cuts
//                             it (Pillow's reduce by whole factors first, then the resample)
//
// The photo is taken as the caller gives it: createImageBitmap(file, {imageOrientation:
// 'from-image'}) applies EXIF orientation as facevae.photo.load_photo does (Chromium decodes
// JPEGs to the same pixels as Pillow); load_photo also decodes a JPEG of 2000 px or more at a
// reduced size (draftSize says which), which changes the aligned face little, as the warp
// area-averages a big photo anyway.
//
// Where this is not Python's to the bit: the grain's noise is a seeded generator of its own, not
// numpy's PCG64 (pass options.noise, 218×178×3 in numpy's order, to use numpy's); complete_frame's
// blurs and linear resizes run in double where OpenCV uses float32 (a level off by one here and
// there, beyond the photo).

import { makeCanvas, sizeOf } from './canvas.js';
import { mulberry32, normals } from './seeded.js';

export const CELEBA_SIZE = [178, 218];  // width, height of CelebA's aligned images
export const IMAGE_SIZE = 128;
// Of dlib's 68 points (iBUG 300-W numbering): the eyes' rings, the nose tip and the mouth corners.
const LEFT_EYE = [36, 37, 38, 39, 40, 41], RIGHT_EYE = [42, 43, 44, 45, 46, 47];
const NOSE_TIP = 30, MOUTH_LEFT = 48, MOUTH_RIGHT = 54;
// facevae.align's constants (read there what each is for)
export const CONFIDENT_SCORE = 0.5, WEAK_SCORE = 0.2;
export const BLUR_GROWTH = 1.0, BLUR_SIGMAS = [1, 2, 4, 8, 16, 32], LEAST_GRAIN = 1.0;
export const NOTICEABLE_FILL = 0.01, CROP_ROWS = [18, 200], REFIT_ROUNDS = 2;

// numpy's and OpenCV's rounding (cvRound, np.round, Python's round): half to even
export function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------- points and matrices

const mean = (points) => [points.reduce((s, p) => s + p[0], 0) / points.length,
  points.reduce((s, p) => s + p[1], 0) / points.length];

export function fivePoints(landmarks) {
  // CelebA's five landmarks (eye centres, nose tip, mouth corners) from dlib's 68 ([x, y] each)
  return [mean(LEFT_EYE.map((i) => landmarks[i])), mean(RIGHT_EYE.map((i) => landmarks[i])),
    [...landmarks[NOSE_TIP]], [...landmarks[MOUTH_LEFT]], [...landmarks[MOUTH_RIGHT]]];
}

export function similarity(source, target) {
  // The 2×3 matrix [[c, -s, tx], [s, c, ty]] of the rotation, uniform scale and shift taking the
  // points source (N [x, y]) closest to target in the least-squares sense: the normal equations
  // of align.similarity's system, solved about the centroids
  const [sx, sy] = mean(source), [tx, ty] = mean(target);
  let norm = 0, dot = 0, cross = 0;
  source.forEach(([x, y], i) => {
    const u = x - sx, v = y - sy, p = target[i][0] - tx, q = target[i][1] - ty;
    norm += u * u + v * v;
    dot += u * p + v * q;
    cross += u * q - v * p;
  });
  const c = dot / norm, s = cross / norm;
  return [[c, -s, tx - (c * sx - s * sy)], [s, c, ty - (s * sx + c * sy)]];
}

export function invertAffine(m) {
  // cv2.invertAffineTransform (and the inverse cv2.warpAffine takes), term for term
  let d = m[0][0] * m[1][1] - m[0][1] * m[1][0];
  d = d !== 0 ? 1 / d : 0;
  const a11 = m[1][1] * d, a22 = m[0][0] * d, a12 = -m[0][1] * d, a21 = -m[1][0] * d;
  return [[a11, a12, -a11 * m[0][2] - a12 * m[1][2]], [a21, a22, -a21 * m[0][2] - a22 * m[1][2]]];
}

export const transform = (m, points) => points.map(([x, y]) => [m[0][0] * x + m[0][1] * y + m[0][2],
  m[1][0] * x + m[1][1] * y + m[1][2]]);

// Points of the frame matrix maps into, back in the photo's pixels (align.to_photo)
export const toPhoto = (matrix, points) => transform(invertAffine(matrix), points);

const multiply = (a, b) => [0, 1].map((r) => [0, 1, 2].map((c) => a[r][0] * b[0][c] + a[r][1] * b[1][c] + (c === 2 ? a[r][2] : 0)));

export function celebaSquare(width, height) {
  // preprocess.celeba_square: the centred square (left, top, right, bottom), rows 20–197 of 178×218
  const side = Math.min(width, height), left = rint((width - side) / 2), top = rint((height - side) / 2);
  return [left, top, left + side, top + side];
}

export function squareCorners(width, height) {
  const [left, top, right, bottom] = celebaSquare(width, height);
  return [[left, top], [right, top], [right, bottom], [left, bottom]];
}

export function draftSize(width, height, longSide = 1000) {
  // The size facevae.photo.load_photo decodes a big JPEG at (Pillow's draft, DCT scaling by 1/2,
  // 1/4 or 1/8 while both sides stay at least draft_size's): createImageBitmap(file,
  // {resizeWidth, resizeHeight}) to see a JPEG as the server would. [width, height] when unscaled.
  const shrink = Math.max(1, Math.max(width, height) / longSide);
  const wanted = [Math.max(1, Math.trunc(width / shrink)), Math.max(1, Math.trunc(height / shrink))];
  const scale = Math.min(Math.floor(width / wanted[0]), Math.floor(height / wanted[1]));
  const s = [8, 4, 2, 1].find((a) => scale >= a);
  return [Math.ceil(width / s), Math.ceil(height / s)];
}

export function templateOf(json) {
  // align.template: the five points of the parsed celeba_landmarks.json, and the detector box
  // (left, top, right, bottom, rounded as dlib.rectangle(*round(v))) the landmarks are placed from
  return { points: fivePoints(json.landmarks), box: json.box.map(rint) };
}

// ---------------------------------------------------------------- images
// An image here is {width, height, channels, data}: data row by row, channels interleaved (numpy's
// H×W×C), Uint8Array for pixels, Float64Array for the float work.

const image = (width, height, channels, Type = Uint8Array) => ({ width, height, channels, data: new Type(width * height * channels) });

function imageDataOf(rgb) {
  const n = rgb.width * rgb.height, rgba = new Uint8ClampedArray(4 * n);
  for (let p = 0; p < n; p++) {
    rgba[4 * p] = rgb.data[3 * p];
    rgba[4 * p + 1] = rgb.data[3 * p + 1];
    rgba[4 * p + 2] = rgb.data[3 * p + 2];
    rgba[4 * p + 3] = 255;
  }
  return new ImageData(rgba, rgb.width, rgb.height);
}

function rgbOf(imageData) {
  // RGBA -> RGB, transparency on white (as preprocess.to_rgb)
  const n = imageData.width * imageData.height, out = image(imageData.width, imageData.height, 3), rgba = imageData.data;
  for (let p = 0; p < n; p++) {
    const alpha = rgba[4 * p + 3];
    for (let k = 0; k < 3; k++) {
      out.data[3 * p + k] = alpha === 255 ? rgba[4 * p + k] : rint((rgba[4 * p + k] * alpha + 255 * (255 - alpha)) / 255);
    }
  }
  return out;
}

function canvasOf(rgb) {
  const canvas = makeCanvas(rgb.width, rgb.height);
  canvas.getContext('2d').putImageData(imageDataOf(rgb), 0, 0);
  return canvas;
}

export function readPhoto(source) {
  // {rgb, canvas}: the pixels of an ImageData, canvas, ImageBitmap, <img>, <video> or VideoFrame,
  // and a canvas holding them (what the landmark net is given). A bitmap made with
  // createImageBitmap(file, {imageOrientation: 'from-image'}) is upright, as load_photo makes it.
  if (typeof ImageData === 'function' && source instanceof ImageData) {
    const rgb = rgbOf(source);
    return { rgb, canvas: canvasOf(rgb) };
  }
  const [width, height] = sizeOf(source);
  const isCanvas = (typeof OffscreenCanvas === 'function' && source instanceof OffscreenCanvas) ||
    (typeof HTMLCanvasElement === 'function' && source instanceof HTMLCanvasElement);
  if (isCanvas) return { rgb: rgbOf(source.getContext('2d').getImageData(0, 0, width, height)), canvas: source };
  const canvas = makeCanvas(width, height), g = canvas.getContext('2d', { willReadFrequently: true });
  g.fillStyle = '#fff';  // transparency on white, as preprocess.to_rgb puts it
  g.fillRect(0, 0, width, height);
  g.drawImage(source, 0, 0, width, height);
  return { rgb: rgbOf(g.getImageData(0, 0, width, height)), canvas };
}

// ---------------------------------------------------------------- OpenCV's warp and resizes

function affineGrid(matrix, width, height, visit) {
  // cv2.warpAffine's coordinates (WarpAffineInvoker): the inverse matrix in 1/1024 px, rounded,
  // then 1/32 px; visit(outputIndex, sx, sy, fx, fy) with fx, fy in 0..31
  const [[m0, m1, m2], [m3, m4, m5]] = invertAffine(matrix);
  const adelta = new Int32Array(width), bdelta = new Int32Array(width);
  for (let x = 0; x < width; x++) {
    adelta[x] = rint(m0 * x * 1024);
    bdelta[x] = rint(m3 * x * 1024);
  }
  for (let y = 0; y < height; y++) {
    const x0 = rint((m1 * y + m2) * 1024) + 16, y0 = rint((m4 * y + m5) * 1024) + 16;
    for (let x = 0; x < width; x++) {
      const X = (x0 + adelta[x]) >> 5, Y = (y0 + bdelta[x]) >> 5;
      visit(y * width + x, X >> 5, Y >> 5, X & 31, Y & 31);
    }
  }
}

export function warpAffine(src, matrix, width, height) {
  // cv2.warpAffine(src, matrix, (width, height), INTER_LINEAR, BORDER_REPLICATE) on uint8 pixels
  const out = image(width, height, src.channels), cn = src.channels, s = src.data, w = src.width, h = src.height;
  const clampX = (x) => (x < 0 ? 0 : x >= w ? w - 1 : x), clampY = (y) => (y < 0 ? 0 : y >= h ? h - 1 : y);
  affineGrid(matrix, width, height, (i, sx, sy, fx, fy) => {
    const a = clampX(sx) * cn, b = clampX(sx + 1) * cn, r0 = clampY(sy) * w * cn, r1 = clampY(sy + 1) * w * cn;
    const w00 = (32 - fx) * (32 - fy), w01 = fx * (32 - fy), w10 = (32 - fx) * fy, w11 = fx * fy;
    for (let k = 0; k < cn; k++) {
      const v = (s[r0 + a + k] * w00 + s[r0 + b + k] * w01 + s[r1 + a + k] * w10 + s[r1 + b + k] * w11 + 512) >> 10;
      out.data[i * cn + k] = v > 255 ? 255 : v;
    }
  });
  return out;
}

export function photoShare(matrix, photoWidth, photoHeight, [width, height] = CELEBA_SIZE) {
  // align.photo_share: how much of each frame pixel (Float32Array, 0 to 1) the photo covers: a
  // white photo warped onto black, 0..255 as OpenCV computes it, over 255
  const share = new Float32Array(width * height);
  const inside = (x, y) => (x >= 0 && x < photoWidth && y >= 0 && y < photoHeight ? 255 : 0);
  affineGrid(matrix, width, height, (i, sx, sy, fx, fy) => {
    const v = inside(sx, sy) * (32 - fx) * (32 - fy) + inside(sx + 1, sy) * fx * (32 - fy) +
      inside(sx, sy + 1) * (32 - fx) * fy + inside(sx + 1, sy + 1) * fx * fy;
    share[i] = ((v + 512) >> 10) / 255;
  });
  return share;
}

function areaTable(sourceSize, size) {
  // cv2.resize INTER_AREA's computeResizeAreaTab: [destination, source, weight] triples
  const scale = sourceSize / size, table = [];
  for (let d = 0; d < size; d++) {
    const f1 = d * scale, f2 = f1 + scale, cell = Math.min(scale, sourceSize - f1);
    let s2 = Math.min(Math.floor(f2), sourceSize - 1);
    const s1 = Math.min(Math.ceil(f1), s2);
    if (s1 - f1 > 1e-3) table.push([d, s1 - 1, (s1 - f1) / cell]);
    for (let s = s1; s < s2; s++) table.push([d, s, 1 / cell]);
    if (f2 - s2 > 1e-3) table.push([d, s2, Math.min(f2 - s2, 1, cell) / cell]);
  }
  return table;
}

export function resizeArea(src, width, height) {
  // cv2.resize(src, (width, height), interpolation=INTER_AREA), shrinking: each output pixel the
  // area-weighted mean of the source pixels it covers; uint8 rounds (2×2 blocks as OpenCV's
  // vectorised path does: half up), float stays float
  const cn = src.channels, isFloat = !(src.data instanceof Uint8Array);
  const out = image(width, height, cn, isFloat ? Float64Array : Uint8Array);
  const fx = src.width / width, fy = src.height / height;
  if (!isFloat && fx === 2 && fy === 2) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let k = 0; k < cn; k++) {
          const at = (yy, xx) => src.data[(yy * src.width + xx) * cn + k];
          out.data[(y * width + x) * cn + k] = (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1) + 2) >> 2;
        }
      }
    }
    return out;
  }
  const columns = areaTable(src.width, width), rows = areaTable(src.height, height);
  const to = Int32Array.from(columns, (c) => c[0] * cn), from = Int32Array.from(columns, (c) => c[1] * cn);
  // in float32, as OpenCV sums (Math.fround after each operation), so that it rounds alike
  const alphas = Float32Array.from(columns, (c) => c[2]), f = Math.fround;
  const sum = new Float32Array(width * height * cn), buf = new Float32Array(width * cn);
  for (const [dy, sy, weight] of rows) {
    buf.fill(0);
    const row = sy * src.width * cn, beta = f(weight);
    for (let j = 0; j < to.length; j++) {
      for (let k = 0; k < cn; k++) buf[to[j] + k] += f(src.data[row + from[j] + k] * alphas[j]);
    }
    const at = dy * width * cn;
    for (let j = 0; j < width * cn; j++) sum[at + j] += f(beta * buf[j]);
  }
  for (let j = 0; j < sum.length; j++) out.data[j] = isFloat ? sum[j] : Math.min(255, Math.max(0, rint(sum[j])));
  return out;
}

function resizeLinear(src, width, height) {
  // cv2.resize(src, (width, height), interpolation=INTER_LINEAR) of a float image (enlarging):
  // half-pixel centres, clamped at the edges
  const cn = src.channels, out = image(width, height, cn, Float64Array);
  const taps = (sourceSize, size) => Array.from({ length: size }, (_, d) => {
    let f = (d + 0.5) * (sourceSize / size) - 0.5, s = Math.floor(f);
    f -= s;
    if (s < 0) { f = 0; s = 0; }
    if (s >= sourceSize - 1) { f = 0; s = sourceSize - 1; }
    return [s, Math.min(s + 1, sourceSize - 1), f];
  });
  const xs = taps(src.width, width), ys = taps(src.height, height), s = src.data, w = src.width;
  for (let y = 0; y < height; y++) {
    const [y0, y1, fy] = ys[y];
    for (let x = 0; x < width; x++) {
      const [x0, x1, fx] = xs[x];
      for (let k = 0; k < cn; k++) {
        const top = s[(y0 * w + x0) * cn + k] * (1 - fx) + s[(y0 * w + x1) * cn + k] * fx;
        const bottom = s[(y1 * w + x0) * cn + k] * (1 - fx) + s[(y1 * w + x1) * cn + k] * fx;
        out.data[(y * width + x) * cn + k] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

export function gaussianBlur(src, sigma) {
  // cv2.GaussianBlur(float image, (0, 0), sigma): a kernel of round(8σ + 1) | 1 taps, borders
  // reflected without repeating the edge pixel (BORDER_REFLECT_101); rows, then columns
  const n = rint(sigma * 8 + 1) | 1, half = (n - 1) / 2, kernel = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += kernel[i] = Math.exp((-0.5 / (sigma * sigma)) * (i - half) ** 2);
  for (let i = 0; i < n; i++) kernel[i] /= total;
  const reflect = (i, size) => {
    if (size === 1) return 0;
    while (i < 0 || i >= size) i = i < 0 ? -i : 2 * size - 2 - i;
    return i;
  };
  const { width, height, channels: cn } = src;
  const pass = (input, horizontal) => {
    // each output pixel's taps as offsets into input.data, for channel 0
    const size = horizontal ? width : height, step = horizontal ? cn : width * cn, taps = new Int32Array(size * n);
    for (let i = 0; i < size; i++) {
      for (let t = 0; t < n; t++) taps[i * n + t] = reflect(i + t - half, size) * step;
    }
    const out = image(width, height, cn, Float64Array), data = input.data;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const base = horizontal ? y * width * cn : x * cn, at = (horizontal ? x : y) * n, o = (y * width + x) * cn;
        for (let k = 0; k < cn; k++) {
          let v = 0;
          for (let t = 0; t < n; t++) v += kernel[t] * data[base + taps[at + t] + k];
          out.data[o + k] = v;
        }
      }
    }
    return out;
  };
  return pass(pass(src, true), false);
}

export function blurred(src, sigma) {
  // align.blurred: past σ 2, one of σ 2 on a copy σ/2 times smaller, enlarged again
  if (sigma <= 2) return gaussianBlur(src, sigma);
  const factor = sigma / 2;
  const small = resizeArea(src, Math.max(1, rint(src.width / factor)), Math.max(1, rint(src.height / factor)));
  return resizeLinear(gaussianBlur(small, 2), src.width, src.height);
}

// ---------------------------------------------------------------- the warp and the completed frame

export function warp(photo, matrix, [width, height] = CELEBA_SIZE) {
  // align.warp: the photo seen through matrix (photo pixels -> output pixels), edge pixels
  // repeated beyond it; a matrix that shrinks by more than 0.8 has the part of the photo it reads
  // area-averaged first
  const scale = Math.sqrt(Math.abs(matrix[0][0] * matrix[1][1] - matrix[0][1] * matrix[1][0]));
  if (scale < 0.8) {
    const corners = toPhoto(matrix, [[0, 0], [width, 0], [width, height], [0, height]]);
    const left = Math.max(Math.floor(Math.min(...corners.map((p) => p[0]))) - 2, 0);
    const top = Math.max(Math.floor(Math.min(...corners.map((p) => p[1]))) - 2, 0);
    const right = Math.min(Math.ceil(Math.max(...corners.map((p) => p[0]))) + 2, photo.width);
    const bottom = Math.min(Math.ceil(Math.max(...corners.map((p) => p[1]))) + 2, photo.height);
    if (right - left >= 2 && bottom - top >= 2) {
      const region = image(right - left, bottom - top, photo.channels);
      for (let y = top; y < bottom; y++) {
        region.data.set(photo.data.subarray((y * photo.width + left) * photo.channels, (y * photo.width + right) * photo.channels),
          (y - top) * region.width * photo.channels);
      }
      const smaller = resizeArea(region, Math.max(1, rint(region.width * scale)), Math.max(1, rint(region.height * scale)));
      const fx = smaller.width / region.width, fy = smaller.height / region.height;
      const toRegion = [[1 / fx, 0, left + 0.5 / fx - 0.5], [0, 1 / fy, top + 0.5 / fy - 0.5]];
      return warpAffine(smaller, multiply(matrix, toRegion), width, height);
    }
  }
  return warpAffine(photo, matrix, width, height);
}

function distanceOutside(share, width, height) {
  // align.distance_outside: each pixel's Euclidean distance to the nearest one the photo covers
  // in full (cv2.distanceTransform DIST_L2, DIST_MASK_PRECISE: exact; Felzenszwalb's transform)
  const INF = 1e20, f = new Float64Array(width * height);
  for (let i = 0; i < f.length; i++) f[i] = share[i] >= 1 ? 0 : INF;
  const line = (get, set, n) => {
    const d = new Float64Array(n), v = new Int32Array(n), z = new Float64Array(n + 1), g = new Float64Array(n);
    for (let q = 0; q < n; q++) g[q] = get(q);
    let k = 0;
    v[0] = 0; z[0] = -Infinity; z[1] = Infinity;
    for (let q = 1; q < n; q++) {
      let s = ((g[q] + q * q) - (g[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
      while (s <= z[k]) {
        k--;
        s = ((g[q] + q * q) - (g[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
      }
      k++;
      v[k] = q; z[k] = s; z[k + 1] = Infinity;
    }
    k = 0;
    for (let q = 0; q < n; q++) {
      while (z[k + 1] < q) k++;
      d[q] = (q - v[k]) ** 2 + g[v[k]];
    }
    for (let q = 0; q < n; q++) set(q, d[q]);
  };
  for (let x = 0; x < width; x++) line((y) => f[y * width + x], (y, value) => { f[y * width + x] = value; }, height);
  for (let y = 0; y < height; y++) line((x) => f[y * width + x], (x, value) => { f[y * width + x] = value; }, width);
  return f.map(Math.sqrt);
}

function growingBlur(frame, distance, growth = BLUR_GROWTH) {
  // align.growing_blur: each pixel a blend of the two copies blurred by the σs of BLUR_SIGMAS
  // (0 first) either side of growth × its distance
  const sigmas = [0, ...BLUR_SIGMAS], top = sigmas[sigmas.length - 1];
  const wanted = distance.map((d) => Math.min(Math.max(d * growth, 0), top));
  const most = wanted.reduce((a, b) => Math.max(a, b), 0);
  const needed = sigmas.slice(0, sigmas.findIndex((s) => s >= most) + 1);
  if (needed.length === 1) return frame;
  const levels = [frame, ...needed.slice(1).map((sigma) => blurred(frame, sigma))];
  const out = image(frame.width, frame.height, frame.channels, Float64Array), cn = frame.channels;
  wanted.forEach((w, p) => {
    let lower = 0;
    while (lower < needed.length - 2 && needed[lower + 1] <= w) lower++;
    const weight = (w - needed[lower]) / (needed[lower + 1] - needed[lower]);
    for (let k = 0; k < cn; k++) {
      out.data[p * cn + k] = (1 - weight) * levels[lower].data[p * cn + k] + weight * levels[lower + 1].data[p * cn + k];
    }
  });
  return out;
}

function median(values) {
  const sorted = Float64Array.from(values).sort(), n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

function grainLevel(frame, share) {
  // align.grain's level: the photo's pixels' deviation from their neighbours (σ 1), robustly
  // (1.4826 × the median absolute value over every 7th fully covered pixel), at least LEAST_GRAIN
  const smooth = gaussianBlur(frame, 1.0), cn = frame.channels, values = [];
  let covered = 0;
  for (let p = 0; p < share.length; p++) {
    if (share[p] < 1) continue;
    if (covered++ % 7 === 0) {
      for (let k = 0; k < cn; k++) values.push(Math.abs(frame.data[p * cn + k] - smooth.data[p * cn + k]));
    }
  }
  return Math.max(LEAST_GRAIN, values.length ? 1.4826 * median(values) : 0);
}

const noises = new Map();

export function unitNoise(length, seed = 0) {
  // Standard normal noise, the same for the same length: numpy's default_rng(0) is not reproduced
  // (PCG64 and its ziggurat), seeded.js's generator (mulberry32 and Box–Muller) stands in
  const key = `${length}:${seed}`;
  if (!noises.has(key)) noises.set(key, normals(mulberry32(seed), length, new Float32Array(length)));
  return noises.get(key);
}

export function completeFrame(photo, matrix, { noise = null } = {}) {
  // align.complete_frame: {frame (178×218 RGB), share (Float32Array, or null where the photo
  // covers all crop_celeba reads: the warp as it is)}. Beyond the photo the edge pixels repeat,
  // blurred the more the further out, with the photo's grain; its own pixels are kept as they are.
  const [width, height] = CELEBA_SIZE, warped = warp(photo, matrix);
  const share = photoShare(matrix, photo.width, photo.height);
  let least = 1;
  for (let p = CROP_ROWS[0] * width; p < CROP_ROWS[1] * width; p++) least = Math.min(least, share[p]);
  if (least >= 1) return { frame: warped, share: null };
  const frame = { ...warped, data: Float64Array.from(warped.data) };
  const filled = growingBlur(frame, distanceOutside(share, width, height));
  const level = grainLevel(frame, share), unit = noise ?? unitNoise(frame.data.length);
  const out = image(width, height, 3);
  for (let j = 0; j < out.data.length; j++) {
    const covered = share[(j / 3) | 0], fill = filled.data[j] + level * unit[j];
    out.data[j] = Math.min(255, Math.max(0, rint(covered * frame.data[j] + (1 - covered) * fill)));
  }
  return { frame: out, share };
}

// ---------------------------------------------------------------- Pillow's resample

function pillowCoefficients(inSize, in0, in1, outSize) {
  // Pillow's precompute_coeffs for the BILINEAR (triangle) filter, antialiased when shrinking,
  // then normalize_coeffs_8bpc: weights in 1/2^22
  const scale = (in1 - in0) / outSize, filterScale = Math.max(scale, 1), support = filterScale, ss = 1 / filterScale;
  const taps = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0), xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights = [];
    let total = 0;
    for (let x = xmin; x < xmax; x++) {
      const t = Math.abs((x - center + 0.5) * ss), w = t < 1 ? 1 - t : 0;
      weights.push(w);
      total += w;
    }
    taps.push({ first: xmin, weights: weights.map((w) => {
      const v = total !== 0 ? w / total : w;
      return v < 0 ? Math.trunc(-0.5 + v * 4194304) : Math.trunc(0.5 + v * 4194304);
    }) });
  }
  return taps;
}

const clip8 = (ss) => (ss <= 0 ? 0 : Math.min(255, Math.floor(ss / 4194304)));  // Pillow's clip8, PRECISION_BITS 22

export function resizeBox(src, box, width, height) {
  // Image.resize((width, height), BILINEAR, box=box, reducing_gap=None) on uint8 pixels: a
  // horizontal pass over the rows the vertical one reads, then the vertical pass, each rounded
  // to uint8, as Pillow's ImagingResample does
  box = box.map(Math.fround);  // Pillow reads the box as C floats
  const cn = src.channels, columns = pillowCoefficients(src.width, box[0], box[2], width);
  const rows = pillowCoefficients(src.height, box[1], box[3], height);
  const first = rows[0].first, last = rows[height - 1].first + rows[height - 1].weights.length;
  const temp = image(width, last - first, cn);
  for (let y = first; y < last; y++) {
    for (let x = 0; x < width; x++) {
      const { first: x0, weights } = columns[x];
      for (let k = 0; k < cn; k++) {
        let ss = 2097152;
        for (let t = 0; t < weights.length; t++) ss += src.data[(y * src.width + x0 + t) * cn + k] * weights[t];
        temp.data[((y - first) * width + x) * cn + k] = clip8(ss);
      }
    }
  }
  const out = image(width, height, cn);
  for (let y = 0; y < height; y++) {
    const { first: y0, weights } = rows[y];
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < cn; k++) {
        let ss = 2097152;
        for (let t = 0; t < weights.length; t++) ss += temp.data[((y0 - first + t) * width + x) * cn + k] * weights[t];
        out.data[(y * width + x) * cn + k] = clip8(ss);
      }
    }
  }
  return out;
}

export function reduce(src, factorX, factorY, [x0, y0, x1, y1]) {
  // Pillow's Image.reduce(factor, box) on uint8 pixels (ImagingReduce and ImagingReduceCorners):
  // the mean of each factorX×factorY block of the box, the last column and row of blocks cut
  // short where the box ends, rounded in Pillow's fixed point
  const cn = src.channels, w = x1 - x0, h = y1 - y0;
  const out = image(Math.ceil(w / factorX), Math.ceil(h / factorY), cn);
  const multiplier = (n) => Math.trunc(Math.fround(4294967296 / Math.fround(256 * n)));  // division_UINT32(n, 8)
  for (let y = 0; y < out.height; y++) {
    const top = y0 + y * factorY, bottom = Math.min(top + factorY, y1);
    for (let x = 0; x < out.width; x++) {
      const left = x0 + x * factorX, right = Math.min(left + factorX, x1), n = (right - left) * (bottom - top);
      const m = multiplier(n), amend = Math.floor(n / 2);
      for (let k = 0; k < cn; k++) {
        let ss = amend;
        for (let yy = top; yy < bottom; yy++) {
          for (let xx = left; xx < right; xx++) ss += src.data[(yy * src.width + xx) * cn + k];
        }
        out.data[(y * out.width + x) * cn + k] = Math.floor((ss * m) / 16777216);
      }
    }
  }
  return out;
}

export function resizeReducing(src, box, size, reducingGap = 3.0) {
  // Image.resize((size, size), BILINEAR, box=box, reducing_gap=reducingGap): first reduced by
  // whole factors (Image.reduce, on the box grown by the filter's reach: _get_safe_box) while
  // that leaves reducingGap times the size, then resampled (what align.crop_square does)
  const factorX = Math.trunc((box[2] - box[0]) / size / reducingGap) || 1;
  const factorY = Math.trunc((box[3] - box[1]) / size / reducingGap) || 1;
  if (factorX === 1 && factorY === 1) return resizeBox(src, box, size, size);
  const reachX = 0.5 * ((box[2] - box[0]) / size), reachY = 0.5 * ((box[3] - box[1]) / size);
  const safe = [Math.max(0, Math.trunc(box[0] - reachX)), Math.max(0, Math.trunc(box[1] - reachY)),
    Math.min(src.width, Math.ceil(box[2] + reachX)), Math.min(src.height, Math.ceil(box[3] + reachY))];
  const reduced = reduce(src, factorX, factorY, safe);
  return resizeBox(reduced, [(box[0] - safe[0]) / factorX, (box[1] - safe[1]) / factorY,
    (box[2] - safe[0]) / factorX, (box[3] - safe[1]) / factorY], size, size);
}

export function cropCeleba(frame, size = IMAGE_SIZE) {
  // preprocess.crop_celeba: the centred square of a CelebA-framed image, resized to size×size
  return resizeBox(frame, celebaSquare(frame.width, frame.height), size, size);
}

// ---------------------------------------------------------------- faces

export function describe(face) {
  // align.Face's properties: size (the eye distance), roll (degrees, clockwise), the crop's corners
  const [left, right] = fivePoints(face.landmarks), size = Math.hypot(right[0] - left[0], right[1] - left[1]);
  if (!face.matrix) return { ...face, size };
  return { ...face, size, roll: (Math.atan2(face.matrix[0][1], face.matrix[0][0]) * 180) / Math.PI,
    cropCorners: toPhoto(face.matrix, squareCorners(...CELEBA_SIZE)) };
}

export async function fitToTemplate(photo, landmarks, placeLandmarks, template, rounds = REFIT_ROUNDS) {
  // align.fit_to_template: fit the similarity, warp the face into CelebA's frame, place the
  // landmarks again there (upright, at the template's size and box) and fit again; rounds times.
  // placeLandmarks(canvas, box) -> 68 [x, y] in the canvas's pixels (may return a promise).
  let matrix = similarity(fivePoints(landmarks), template.points);
  for (let round = 0; round < rounds; round++) {
    const placed = await placeLandmarks(canvasOf(warp(photo, matrix)), [...template.box]);
    landmarks = toPhoto(matrix, placed);
    matrix = similarity(fivePoints(landmarks), template.points);
  }
  return { landmarks, matrix };
}

export function rankFaces(faces, { confidentScore = CONFIDENT_SCORE, weakScore = WEAK_SCORE } = {}) {
  // align.rank: by size (the eye distance), a weak detection counting as proportionally smaller
  // and dropped beside one scoring at least weakScore; a face found twice is kept once (two
  // people's faces are at least two eye distances apart). faces: [{landmarks, score, ...}].
  const described = faces.map((face) => (face.size === undefined ? describe(face) : face));
  const strong = described.some((face) => face.score >= weakScore) ? described.filter((face) => face.score >= weakScore) : described;
  const worth = (face) => face.size * Math.min(1, Math.max(face.score, 0.01) / confidentScore);
  const ordered = [...strong].sort((a, b) => worth(b) - worth(a));  // stable, as Python's sorted
  const kept = [];
  for (const face of ordered) {
    const centre = mean(face.landmarks);
    if (kept.every((other) => {
      const [x, y] = mean(other.landmarks);
      return Math.hypot(centre[0] - x, centre[1] - y) > other.size;
    })) kept.push(face);
  }
  return kept;
}

function planesOf(rgb) {
  // preprocess.to_tensor: bytes / 255, channels first
  const n = rgb.width * rgb.height, planes = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) {
    for (let k = 0; k < 3; k++) planes[k * n + p] = rgb.data[3 * p + k] / 255;
  }
  return planes;
}

function messageOf(result) {
  // align.FaceInfo.message
  if (!result.found) return ['No face found: used a centre crop, so the result may not look like a face.', ...result.notes].join(' ');
  const n = result.faces.length, roll = result.faces[result.chosen].roll;
  let head = `Found ${n} face${n > 1 ? 's' : ''}; using face ${result.chosen + 1}`;
  head += Math.abs(roll) >= 5 ? `, turned ${Math.abs(roll).toFixed(0)}° in the photo and straightened.` : '.';
  if (result.completed) {
    head += ' The photo ends close to the face: the frame was completed beyond your photo (outlined in the thumbnail).';
  }
  return [head, ...result.notes].join(' ');
}

export async function alignFace(source, faces, placeLandmarks, template, options = {}) {
  // align.align_face after the detector: source (an upright photo: ImageBitmap, canvas, ImageData,
  // <img>, <video>), faces ([{box: [x0, y0, x1, y1], score, landmarks?}] in its pixels; landmarks
  // are placed with placeLandmarks(canvas, box) where a face brings none), template (the parsed
  // celeba_landmarks.json). options: faceIndex, size (128), rounds (REFIT_ROUNDS), noise (the
  // grain's unit noise, 218×178×3), confidentScore and weakScore (rank's thresholds, in the
  // detector's scores), quick (accepted; the alignment is the same).
  // -> {face: ImageData size², planes: Float32Array 3×size² in [0, 1], matrix (2×3, photo ->
  //     CelebA's 178×218 frame, null when no face), filledShare (the share of the face completed
  //     beyond the photo), photoArea (Float32Array size², null when all of it is photo), completed,
  //     found, faces (ranked: landmarks, score, matrix, size, roll, cropCorners, box), chosen,
  //     cropCorners, photoSize, notes, message, frame (ImageData 178×218, the completed frame)}
  const { faceIndex = null, size = IMAGE_SIZE, rounds = REFIT_ROUNDS, noise = null } = options;
  const { rgb: photo, canvas } = readPhoto(source);
  const fit = template.points ? template : templateOf(template);
  const fitted = [];
  for (const found of faces) {
    const rough = found.landmarks ?? await placeLandmarks(canvas, found.box);
    const { landmarks, matrix } = await fitToTemplate(photo, rough, placeLandmarks, fit, rounds);
    fitted.push({ box: found.box, score: found.score, landmarks, matrix });
  }
  const ranked = rankFaces(fitted, options), notes = [];
  const result = { found: ranked.length > 0, faces: ranked, chosen: null, photoSize: [photo.width, photo.height], notes,
    matrix: null, filledShare: 0, photoArea: null, completed: false };
  let crop;
  if (!ranked.length) {
    const square = celebaSquare(photo.width, photo.height);
    crop = resizeReducing(photo, square, size);
    result.cropCorners = squareCorners(photo.width, photo.height);
  } else {
    const chosen = faceIndex !== null && faceIndex >= 0 && faceIndex < ranked.length ? faceIndex : 0;
    if (faceIndex !== null && chosen !== faceIndex) notes.push(`There is no face ${faceIndex + 1}; used face 1.`);
    const face = ranked[chosen], { frame, share } = completeFrame(photo, face.matrix, { noise });
    Object.assign(result, { chosen, matrix: face.matrix, cropCorners: face.cropCorners, frame: imageDataOf(frame) });
    crop = cropCeleba(frame, size);
    if (share) {
      const coverage = image(...CELEBA_SIZE, 1);
      share.forEach((v, p) => { coverage.data[p] = rint(v * 255); });
      const area = cropCeleba(coverage, size).data;
      result.photoArea = Float32Array.from(area, (v) => v / 255);
      result.filledShare = result.photoArea.reduce((sum, v) => sum + (1 - v), 0) / result.photoArea.length;
      result.completed = result.filledShare >= NOTICEABLE_FILL;
    }
  }
  result.face = imageDataOf(crop);
  result.planes = planesOf(crop);
  result.message = messageOf(result);
  return result;
}
