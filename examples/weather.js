// Shows the weather for the panel's city: one extension call, state updated before and after.
$state.status = 'loading';
try {
  const report = await $ext.weather.get($state.city);
  $state.status = 'ready';
  $view.update('forecast', { text: `${report.temp}°C in ${$state.city}` });
  return report;
} catch (error) {
  $state.status = 'failed';
  $log.error('weather unavailable:', error.message);
  return null;
}
