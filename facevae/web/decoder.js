// The decoder file's two jobs (facevae.export.export_decoder): a latent's face, and the decoder's
// vector-Jacobian product for refining a latent. One file, so its weights are downloaded once.
// Given z and a cotangent c with as many rows, it gives the face y = decode(z) and J^T c; given a
// cotangent of no rows, the face alone, at a decoder's cost.
//
// Planes: Float32Array 3×H×W in [0, 1], as torch's N×C×H×W without the batch.

import { loadSession } from './runtime.js';

export async function loadDecoder(ort, url) {
  // -> {decode(z), decodeAll(latents), vjp(z, cotangent)}; ort: ONNX Runtime Web's module (runtime.js's loadRuntime)
  const session = await loadSession(ort, url);
  const latent = (z) => new ort.Tensor('float32', Float32Array.from(z), [1, z.length]);
  const noCotangent = new ort.Tensor('float32', new Float32Array(0), [0, 3, 0, 0]);

  async function decode(z) {
    // one latent's face: planes
    const { image } = await session.run({ z: latent(z), cotangent: noCotangent });
    return image.data;
  }

  async function decodeAll(latents) {
    // several latents' faces in one run: an array of planes
    const n = latents.length, dim = latents[0].length, z = new Float32Array(n * dim);
    latents.forEach((row, i) => z.set(row, i * dim));
    const { image } = await session.run({ z: new ort.Tensor('float32', z, [n, dim]), cotangent: noCotangent });
    const size = image.data.length / n;
    return Array.from({ length: n }, (_, i) => image.data.subarray(i * size, (i + 1) * size));
  }

  async function vjp(z, cotangent) {
    // -> {image: z's face, zGrad: J^T cotangent (Float32Array, latent_dim)}; cotangent: planes
    const size = Math.round(Math.sqrt(cotangent.length / 3));
    const { image, z_grad: zGrad } = await session.run({
      z: latent(z), cotangent: new ort.Tensor('float32', cotangent, [1, 3, size, size]),
    });
    return { image: image.data, zGrad: zGrad.data };
  }

  return { decode, decodeAll, vjp };
}
