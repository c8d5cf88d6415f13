// The counter of examples/counter.js, in TypeScript: types are stripped (not checked) before
// it runs, and any error points at a line of this file.
interface Step {
  step?: number;
}
type Count = number;
enum Change {
  Up = 'up',
  Down = 'down',
}

function advance<T extends Count>(from: T, by: number): Count {
  return from + by;
}

const step = ($args as Step)?.step ?? 1;
const next: Count = advance(($state.count as Count | undefined) ?? 0, step);
$state.count = next;
$emit('changed', { value: next, direction: step >= 0 ? Change.Up : Change.Down });
$view.update('counter-label', { text: `Count: ${next}` });
$log.info('count is now', next);
return next;
