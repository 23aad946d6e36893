// ONNX Runtime Web, loaded once from the app's own copy (facevae/web/vendor/onnxruntime-web: no CDN),
// and the check that this browser can run it at all.

// The smallest module with a SIMD instruction (wasm-feature-detect's test): ORT's WASM build needs SIMD.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8,
  0, 65, 0, 253, 15, 253, 98, 11]);

const runtimes = new Map();  // runtime URL -> the promise of its module: every face on the page shares one

export function loadRuntime(runtimeUrl) {
  const url = new URL(runtimeUrl, location.href).href;
  if (!runtimes.has(url)) runtimes.set(url, importRuntime(url));
  return runtimes.get(url);
}

async function importRuntime(url) {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_PROBE)) {
    throw new Error('this browser has no WebAssembly SIMD');
  }
  const ort = await import(url + 'ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = url;
  // One thread: a face is too small to gain from more (docs/browser.md measures it), and threads
  // would need a cross-origin-isolated page.
  ort.env.wasm.numThreads = 1;
  return ort;
}

export function nextTask() {
  // A pause that lets the page paint and take clicks between runs. A message, not setTimeout(0):
  // nested timeouts wait at least 4 ms each, which cost 20 refinement steps 60 ms.
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

export async function loadSession(ort, modelUrl) {
  // -> {run(feeds)}, one run at a time: a WASM session cannot run twice at once, and the page's
  // blocks share their sessions (photo.js)
  const session = await ort.InferenceSession.create(new URL(modelUrl, location.href).href,
    { executionProviders: ['wasm'] });
  let last = Promise.resolve();
  return {
    run(feeds) {
      const run = last.then(() => session.run(feeds));
      last = run.catch(() => {});
      return run;
    },
  };
}
