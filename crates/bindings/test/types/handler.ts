// Handler code against handler.d.ts, compiled by test/typescript.test.js with `tsc --noEmit
// --strict` (never run). A handler is the body of an async function; here it sits in one, as
// tsc wants `return` and `await` inside a function.
export async function handler(): Promise<unknown> {
  const count: number = ($state.count ?? 0) + ($args.step ?? 1);
  $state.count = count;
  delete $state.stale;
  $emit('changed', { value: count, at: $scope.panel });
  $view.update('counter-label', { text: `Count: ${count}` });
  $view.command('scroll', 'list', { to: 0 });
  const weather = await $ext.weather.get('Paris');
  $log('plain', weather);
  $log.debug('debug');
  $log.info('info');
  $log.warn('warn');
  $log.error('error');

  // What the declarations refuse.
  // @ts-expect-error an event name is a string
  $emit(42);
  // @ts-expect-error a view update names its component
  $view.update();
  // @ts-expect-error an extension method returns a Promise, not a value
  const sync: number = $ext.weather.get('Paris');
  // @ts-expect-error $log has no such level
  $log.trace('x');
  return [count, sync];
}
