// A small seeded generator, the same numbers as Python's facevae.seeded: mulberry32 for uniforms,
// Box–Muller for normals (numpy's and torch's generators cannot be reproduced here). align.js's
// grain and random.js's faces draw with it.

export function seedState(seed) {
  // facevae.seeded.seed_state: the seed modulo 2**64, its two halves xor-ed
  const s = BigInt.asUintN(64, BigInt(Math.round(Number(seed) || 0)));
  return Number((s ^ (s >> 32n)) & 0xFFFFFFFFn);
}

export function mulberry32(state) {
  // uniform numbers in (0, 1) from a 32-bit state
  state >>>= 0;
  return () => {
    state = (state + 0x6D2B79F5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

export function normals(uniform, length, out = new Float64Array(length)) {
  // `length` standard normals: each pair of uniforms (u, v) gives r·cos(2πv) and r·sin(2πv),
  // r = √(−2 ln u); for an odd length the last sine is dropped
  for (let i = 0; i < length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform())), a = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(a);
    if (i + 1 < length) out[i + 1] = r * Math.sin(a);
  }
  return out;
}
