let seed = $args.seed;
const items = [];
for (let i = 0; i < $args.n; i++) {
  seed = (seed * 48271) % 2147483647;
  items.push({ id: i, score: seed % 1000, tag: 'item' + (seed % 97) });
}
items.sort((x, y) => x.score - y.score || x.id - y.id);
const kept = items.filter((item) => item.score % 2 === 0);
const copy = JSON.parse(JSON.stringify(kept));
return copy.length + copy[0].score + copy[copy.length - 1].score;
