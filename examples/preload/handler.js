// Run with the libraries preloaded (see the README, "Preloaded libraries"):
//   nexus run examples/preload/handler.js \
//     --preload benches/libraries/lodash-4.17.21.min.js --preload examples/preload/panel-sdk.js \
//     --args '{"items": [{"category": "tea", "cents": 450}, {"category": "cake", "cents": 300}, {"category": "tea", "cents": 250}]}'
const totals = _.sortBy(panel.totals($args.items), 'category');
$log.info(`${totals.length} categories`);
return totals;
