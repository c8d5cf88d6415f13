// Uses lodash 4.17.21 (benches/libraries): preloaded into the snapshot by Nexus, evaluated in
// each fresh context by the peers.
const byCustomer = _.groupBy($args.orders, 'customer');
return _.map(_.sortBy(_.keys(byCustomer)), (customer) => ({
  customer,
  total: _.sumBy(byCustomer[customer], 'amount'),
  largest: _.maxBy(byCustomer[customer], 'amount').id,
}));
