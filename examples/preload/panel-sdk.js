// A platform's own helpers, preloaded after lodash (so they may use it): every handler sees the
// global `panel` without bundling anything, and no handler can change it for the next one.
var panel = {
  currency: function (cents) {
    return (cents / 100).toFixed(2) + ' EUR';
  },
  totals: function (items) {
    return _.map(_.groupBy(items, 'category'), function (group, category) {
      return { category: category, total: panel.currency(_.sumBy(group, 'cents')) };
    });
  },
};
