// Following a face from camera frame to camera frame, as MediaPipe's face pipelines do: the previous
// frame's landmarks place this frame's. The face is warped upright where they put it and the
// landmark net runs once on it (align.js's refit round), instead of the detector and three passes
// of the landmark net. Each frame's fit starts from the last, so a face that stays still settles
// where the photos' two rounds put it; one that moved more than SETTLED eye distances gets a
// second round from where the first put it.
//
// The followed face is warped by the browser (warpedCanvas: drawImage through the fit's matrix),
// not by align.js's copy of OpenCV and Pillow to the bit: 14-17 ms a frame instead of 29-52 (Intel
// Xeon), the face 32-43 dB from align.js's for the same matrix (Grace Hopper, the astronaut, a
// CelebA face). Where the CelebA frame reaches beyond the picture, align.js's path completes it, as
// it does a photo's.
//
// The detector runs again when no face is followed, when the followed one jumps (its centre moves
// by more than MAX_SHIFT eye distances in a round, or its size by more than MAX_RESIZE times), and
// every DETECT_EVERY frames: a face that leaves the picture is let go within that many frames, and a
// face that comes back is found on the next frame, since with no face followed every frame is
// searched.

import { canvasPlanes, warpedCanvas } from './canvas.js';
import { CELEBA_SIZE, IMAGE_SIZE, celebaSquare, describe, fivePoints, similarity, templateOf, toPhoto } from './align.js';

export const DETECT_EVERY = 10;
const SETTLED = 0.25, MAX_SHIFT = 1, MAX_RESIZE = 1.25;

const centre = (points) => [0, 1].map((k) => points.reduce((sum, point) => sum + point[k], 0) / points.length);

function shift(face, previous) {
  // how far the face moved, in eye distances; Infinity where its size jumped
  const [x, y] = centre(face.landmarks), [px, py] = centre(previous.landmarks), resize = face.size / previous.size;
  return resize <= MAX_RESIZE && resize >= 1 / MAX_RESIZE ? Math.hypot(x - px, y - py) / previous.size : Infinity;
}

const followable = (face) => ({ box: face.box, score: face.score, landmarks: face.landmarks, size: face.size });

function continuous([[a, b, e], [c, d, f]]) {
  // an OpenCV warp's matrix (pixel centres at whole numbers) for the canvas (pixel corners there)
  return [[a, b, e + 0.5 - 0.5 * (a + b)], [c, d, f + 0.5 - 0.5 * (c + d)]];
}

function withinPicture(matrix, width, height) {
  // whether the CelebA frame that matrix takes the face to lies inside the picture
  return toPhoto(matrix, [[0, 0], [CELEBA_SIZE[0], 0], [0, CELEBA_SIZE[1]], CELEBA_SIZE])
    .every(([x, y]) => x >= 0 && y >= 0 && x <= width && y <= height);
}

async function quickAlign(pipeline, template, frame, face) {
  // align.js's one refit round from face's landmarks and the 128-px face (crop_celeba of the
  // frame), both warped by the browser; null where the CelebA frame leaves the picture
  const { width, height } = frame;
  let matrix = similarity(fivePoints(face.landmarks), template.points);
  if (!withinPicture(matrix, width, height)) return null;
  const placed = await pipeline.placeLandmarks(warpedCanvas(frame, continuous(matrix), ...CELEBA_SIZE), [...template.box]);
  const landmarks = toPhoto(matrix, placed);
  matrix = similarity(fivePoints(landmarks), template.points);
  if (!withinPicture(matrix, width, height)) return null;
  const [left, top, right] = celebaSquare(...CELEBA_SIZE), k = IMAGE_SIZE / (right - left);
  const [[a, b, e], [c, d, f]] = continuous(matrix);
  const crop = warpedCanvas(frame, [[k * a, k * b, k * (e - left)], [k * c, k * d, k * (f - top)]], IMAGE_SIZE, IMAGE_SIZE);
  return { found: true, planes: canvasPlanes(crop), chosen: 0,
    faces: [describe({ box: face.box, score: face.score, landmarks, matrix })] };
}

function contains([x0, y0, x1, y1], [x, y]) {
  return x >= x0 && x <= x1 && y >= y0 && y <= y1;
}

export function faceTracker(pipeline, template, { detection = {}, detectEvery = DETECT_EVERY } = {}) {
  // -> async align(frame, time): photo.js's pipeline.align for the next frame of a stream (a
  // canvas), taken at `time` (ms), with `detected` (whether the detector ran on it) added to the
  // result; template: the parsed celeba_landmarks.json
  const fit = templateOf(template);
  let followed = null, velocity = [0, 0], lastTime = 0, sinceDetection = 0;

  async function follow(frame, elapsed) {
    // the followed face on this frame, or null where it jumped. It starts where it was, moved on
    // at the speed it last moved: a face crossing the picture is then aligned 37-40 dB from where
    // the detector and two rounds put it (41-51 dB with align.js's warp), against 26-34 dB from
    // where it was.
    const [dx, dy] = velocity.map((v) => v * elapsed);
    let start = { ...followed, landmarks: followed.landmarks.map(([x, y]) => [x + dx, y + dy]) };
    for (let round = 0; round < 2; round++) {
      const result = await quickAlign(pipeline, fit, frame, start) ?? await pipeline.alignFound(frame, [start], { rounds: 1 });
      const moved = shift(result.faces[0], start);
      if (moved > MAX_SHIFT) return null;
      if (moved <= SETTLED) return result;
      start = followable(result.faces[0]);
    }
    return null;
  }

  async function search(frame, checking, elapsed) {
    // the detector's faces aligned; when checking on the followed face (not after it jumped), it
    // is followed on if the detector still sees it there
    const faces = await pipeline.detect(frame, detection);
    const seen = checking && followed && faces.some((face) => contains(face.box, centre(followed.landmarks)));
    const result = seen ? await follow(frame, elapsed) : null;
    return { result: result ?? await pipeline.alignFound(frame, faces, { faceIndex: 0 }), kept: Boolean(result) };
  }

  return async function align(frame, time = performance.now()) {
    const due = !followed || sinceDetection >= detectEvery, elapsed = time - lastTime;
    let result = due ? null : await follow(frame, elapsed), kept = Boolean(result);
    const detected = !result;
    if (detected) {
      ({ result, kept } = await search(frame, due, elapsed));
      sinceDetection = 0;
    }
    sinceDetection++;
    const next = result.found ? followable(result.faces[result.chosen]) : null;
    velocity = next && kept && elapsed > 0 ?
      [0, 1].map((k) => (centre(next.landmarks)[k] - centre(followed.landmarks)[k]) / elapsed) : [0, 0];
    followed = next;
    lastTime = time;
    return { ...result, detected };
  };
}
