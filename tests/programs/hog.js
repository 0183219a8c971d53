// A node workload for preload_test (RealProgram): a Map of N small objects
// built, then read and replaced at random, a checksum printed. Deterministic.
const n = parseInt(process.argv[2], 10);
const m = new Map();
let x = 42n;
function rnd() {
  x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
  return Number(x >> 33n);
}
for (let i = 0; i < n; i++) m.set('k' + i, { a: rnd(), b: 'v' + rnd(), c: [rnd(), rnd()] });
let sum = 0;
for (let i = 0; i < n; i++) {
  const o = m.get('k' + (rnd() % n));
  sum = (sum + o.a + o.c[1]) % 1000000007;
  if (i % 3 === 0) m.set('k' + (rnd() % n), { a: sum, b: 'w', c: [1, 2] });
}
console.log(m.size, sum);
