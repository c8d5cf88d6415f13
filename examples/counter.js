// Increments the panel's counter and tells the panel about it.
const next = ($state.count ?? 0) + ($args.step ?? 1);
$state.count = next;
$emit('changed', { value: next });
$view.update('counter-label', { text: `Count: ${next}` });
$log.info('count is now', next);
return next;
