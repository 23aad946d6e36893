// ONNX Runtime Web, loaded once from the app's own copy (facevae/web/vendor/onnxruntime-web: no CDN),
// the check that this browser can run it at all, and the models' sessions, each file loaded once.

// The smallest module with a SIMD instruction (wasm-feature-detect's test): ORT's WASM build needs SIMD.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8,
  0, 65, 0, 253, 15, 253, 98, 11]);

const runtimes = new Map();  // runtime URL -> the promise of its module: every face on the page shares one
const sessions = new Map();  // model URL -> the promise of its session: the page's blocks share them

export function fileUrl(folderUrl, name) {
  // A file in a folder given by URL, with the folder's query: the app versions its folders'
  // URLs (?v=…) so that a new release is fetched anew, and the files in them carry the version too.
  const url = new URL(folderUrl, location.href);
  url.pathname += (url.pathname.endsWith('/') ? '' : '/') + name;
  return url.href;
}

export function missingSupport() {
  // why this browser cannot run the models, or null: checked before anything is downloaded
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_PROBE)) return 'this browser has no WebAssembly SIMD';
  return null;
}

export function firstShown(element) {
  // resolves the first time the element is on screen: a tab's blocks load their runtime and models
  // when the tab is first opened, not with the page
  return new Promise((resolve) => {
    const observer = new IntersectionObserver((entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      observer.disconnect();
      resolve();
    });
    observer.observe(element);
  });
}

export function loadRuntime(runtimeUrl) {
  const url = new URL(runtimeUrl, location.href).href;
  if (!runtimes.has(url)) runtimes.set(url, importRuntime(url));
  return runtimes.get(url);
}

async function importRuntime(url) {
  const missing = missingSupport();
  if (missing) throw new Error(missing);
  const ort = await import(fileUrl(url, 'ort.wasm.min.mjs'));
  ort.env.wasm.wasmPaths = { mjs: fileUrl(url, 'ort-wasm-simd-threaded.mjs'), wasm: fileUrl(url, 'ort-wasm-simd-threaded.wasm') };
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

export function loadSession(ort, modelUrl) {
  // -> {run(feeds)}, one run at a time: a WASM session cannot run twice at once. Each file is
  // fetched and loaded once a page, whichever blocks use it (the explorer's and the morph's faces
  // and the photos share the decoder).
  const url = new URL(modelUrl, location.href).href;
  if (!sessions.has(url)) sessions.set(url, createSession(ort, url));
  return sessions.get(url);
}

async function createSession(ort, url) {
  const session = await ort.InferenceSession.create(url, { executionProviders: ['wasm'] });
  let last = Promise.resolve();
  return {
    run(feeds) {
      const run = last.then(() => session.run(feeds));
      last = run.catch(() => {});
      return run;
    },
  };
}
