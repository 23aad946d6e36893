// Refining a photo's latent in the page, as facevae.refine.refine_latents does on the server: Adam
// moves the encoder's latent z0 to lower the face-weighted pixel error of its decoded face, pulled
// back towards z0 (the objective of facevae.refine.objective, without the identity term, which the
// page cannot compute). The error is taken to the photo with its detail band boosted (a little beyond
// what the decoder was trained to draw: Refinement.detail_boost says why).
//
// The gradient comes from the decoder's vector-Jacobian product (decoder.js; facevae.export.DecoderVJP,
// in the decoder's file): given z and a cotangent c it gives the face y = decode(z) and J^T c. The
// cotangent of the pixel error depends on y, so each step decodes z first (the same file, asked for
// the face alone) and then asks for J^T c: one forward pass and one forward-and-backward pass a step,
// as torch's autograd does.
//
// Planes everywhere: Float32Array 3×H×W in [0, 1], as torch's N×C×H×W without the batch.

import { loadDecoder } from './decoder.js';
import { loadSession } from './runtime.js';

// facevae.refine.Refinement's defaults (the app's): the page and its tests share them.
export const REFINEMENT = Object.freeze({
  steps: 20, lr: 0.05, identity_weight: 0, face_weight: 16, anchor_weight: 0.5, detail_boost: 0.9,
});

// facevae.losses.DETAIL_BLURS: σ in px of the two blurs whose difference is the detail band.
export const DETAIL_BLURS = Object.freeze([1.0, 2.0]);

// facevae.losses.FACE_BOX: the inner face of a 128-px crop (left, top, right, bottom), brows to mouth.
export const FACE_BOX = Object.freeze([32, 44, 96, 108]);

function roundHalfEven(v) {
  // Python's round(): halves go to the even neighbour (round(16.5) == 16, Math.round gives 17)
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function faceBox(size) {
  // facevae.losses.face_box: FACE_BOX for a size-px crop
  return FACE_BOX.map((v) => roundHalfEven((v * size) / 128));
}

export function faceWeights(size, weight) {
  // facevae.losses.face_weights: a size×size map (rows first) of mean 1 whose inner face (FACE_BOX)
  // weighs `weight` times the rest
  const [left, top, right, bottom] = faceBox(size);
  const w = new Float64Array(size * size).fill(1);
  for (let row = top; row < Math.min(bottom, size); row++) {
    w.fill(weight, row * size + left, row * size + Math.min(right, size));
  }
  const mean = w.reduce((sum, v) => sum + v, 0) / w.length;
  return Float32Array.from(w, (v) => v / mean);
}

export function gaussianBlur(planes, size, sigma) {
  // facevae.losses.gaussian_blur (and cv2.GaussianBlur): each size×size plane blurred by a Gaussian of
  // σ px, 2·round(4σ)+1 taps, rows then columns, the edges mirrored without repeating the border pixel
  const radius = roundHalfEven(4 * sigma);
  const taps = Array.from({ length: 2 * radius + 1 }, (_, k) => Math.exp(-0.5 * ((k - radius) / sigma) ** 2));
  const total = taps.reduce((sum, v) => sum + v, 0);
  const weights = taps.map((v) => v / total);
  const mirror = (i) => (i < 0 ? -i : i >= size ? 2 * size - 2 - i : i);
  const pass = (source, along) => {
    const out = new Float32Array(source.length);
    for (let base = 0; base < source.length; base += size * size) {
      for (let row = 0; row < size; row++) {
        for (let col = 0; col < size; col++) {
          let sum = 0;
          for (let k = -radius; k <= radius; k++) {
            sum += weights[k + radius] * (along === 'row'
              ? source[base + row * size + mirror(col + k)] : source[base + mirror(row + k) * size + col]);
          }
          out[base + row * size + col] = sum;
        }
      }
    }
    return out;
  };
  return pass(pass(planes, 'row'), 'column');
}

export function boostDetail(planes, size, amount) {
  // facevae.losses.boost_detail: the planes with their detail band 1 + amount times as strong, in [0, 1]
  const [low, high] = DETAIL_BLURS.map((sigma) => gaussianBlur(planes, size, sigma));
  return Float32Array.from(planes, (v, i) => Math.min(1, Math.max(0, v + amount * (low[i] - high[i]))));
}

export class Adam {
  // torch.optim.Adam's update (no weight decay, no amsgrad), step by step as its single-tensor code:
  //   m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g²
  //   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
  // the state in float32 as torch keeps it, the bias corrections in double as Python computes them.
  constructor(param, { lr, betas = [0.9, 0.999], eps = 1e-8 }) {
    this.param = param;  // a Float32Array, updated in place
    this.lr = lr;
    this.betas = betas;
    this.eps = eps;
    this.m = new Float32Array(param.length);
    this.v = new Float32Array(param.length);
    this.t = 0;
  }

  step(grad) {
    const [beta1, beta2] = this.betas, f = Math.fround;
    const { param, m, v } = this;
    this.t += 1;
    const stepSize = this.lr / (1 - beta1 ** this.t);
    const correction2Sqrt = (1 - beta2 ** this.t) ** 0.5;
    const weight1 = f(1 - beta1), b2 = f(beta2), weight2 = f(1 - beta2);
    const eps = f(this.eps), negStep = f(-stepSize), correction = f(correction2Sqrt);
    for (let i = 0; i < param.length; i++) {
      const g = grad[i];
      m[i] = f(m[i] + f(weight1 * f(g - m[i])));  // torch.lerp below a weight of 0.5
      v[i] = f(f(v[i] * b2) + f(weight2 * f(g * g)));
      const denom = f(f(f(Math.sqrt(v[i])) / correction) + eps);
      param[i] = f(param[i] + f(f(negStep * m[i]) / denom));
    }
  }
}

export async function loadRefiner(ort, { encoderUrl, decoderUrl }) {
  // -> {encode, decode, refine}; ort: ONNX Runtime Web's module (runtime.js's loadRuntime)
  const [encoder, decoder] = await Promise.all([loadSession(ort, encoderUrl), loadDecoder(ort, decoderUrl)]);
  const planes = (x) => {
    const size = Math.round(Math.sqrt(x.length / 3));
    if (3 * size * size !== x.length) throw new Error(`expected 3×H×W planes with H = W, got ${x.length} values`);
    return { size, tensor: new ort.Tensor('float32', Float32Array.from(x), [1, 3, size, size]) };
  };

  async function encode(x) {
    // the encoder's posterior mean for one face: a Float32Array (latent_dim)
    const { mu } = await encoder.run({ image: planes(x).tensor });
    return Float32Array.from(mu.data);
  }

  const { decode } = decoder;  // one latent's face: planes

  async function refine(x, z0, settings = {}, onStep = null) {
    // -> {z: the refined latent (Float32Array), losses: the loss before each step and after the last
    // (steps + 1 numbers, as refine_latents returns), image: the last z's face (planes)}.
    // settings: any of REFINEMENT's fields; onStep(step, loss before it) after each step (awaited, so
    // a caller may yield there to draw its progress).
    const { steps, lr, identity_weight: identityWeight, face_weight: faceWeight, anchor_weight: anchor,
      detail_boost: boost } = { ...REFINEMENT, ...settings };
    if (identityWeight) throw new Error('the page cannot refine with an identity weight (no identity network here)');
    const { size, tensor: image } = planes(x);
    // the photo, its detail boosted (Refinement.detail_boost)
    const target = boost ? boostDetail(image.data, size, boost) : image.data;
    const weights = faceWeights(size, faceWeight), pixels = size * size;
    const start = Float32Array.from(z0), z = Float32Array.from(z0);
    const optimizer = new Adam(z, { lr });
    const losses = [];
    for (let step = 0; ; step++) {
      const y = await decode(z);
      // objective: Σ weights·(y − x)² + anchor·|z − z0|², and its cotangent 2·weights·(y − x)
      const cotangent = new Float32Array(target.length);
      let loss = 0;
      for (let i = 0; i < target.length; i++) {
        const d = y[i] - target[i], w = weights[i % pixels];
        loss += w * d * d;
        cotangent[i] = 2 * w * d;
      }
      for (let i = 0; i < z.length; i++) loss += anchor * (z[i] - start[i]) ** 2;
      losses.push(loss);
      if (step === steps) return { z: Float32Array.from(z), losses, image: Float32Array.from(y) };
      const { zGrad: pixelGrad } = await decoder.vjp(z, cotangent);
      optimizer.step(z.map((v, i) => pixelGrad[i] + 2 * anchor * (v - start[i])));  // + the anchor's
      if (onStep) await onStep(step + 1, loss);
    }
  }

  return { encode, decode, refine };
}
