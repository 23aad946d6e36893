// The mirror's encoder and decoder in a worker of their own (mirror.js): while this reconstructs
// one camera frame's face on one core, the page finds and aligns the next frame's on the other.
// Messages in: {runtimeUrl, encoderUrl, decoderUrl} once, then {planes} (3×size² in [0, 1]) per face;
// out: {ready: true} or {error} once loaded, then {image} (the reconstruction's planes) per face.

import { loadRefiner } from './refine.js';
import { loadRuntime } from './runtime.js';

let refiner = null;

async function load({ runtimeUrl, encoderUrl, decoderUrl }) {
  try {
    refiner = await loadRefiner(await loadRuntime(runtimeUrl), { encoderUrl, decoderUrl });
    postMessage({ ready: true });
  } catch (error) {
    postMessage({ error: error.message ?? String(error) });
  }
}

async function reconstruct(planes) {
  try {
    const image = await refiner.decode(await refiner.encode(planes));
    postMessage({ image }, [image.buffer]);
  } catch (error) {
    postMessage({ error: error.message ?? String(error) });
  }
}

onmessage = ({ data }) => (data.planes ? reconstruct(data.planes) : load(data));
