const sum =
  $state.k0 + $state.k1 + $state.k2 + $state.k3 + $state.k4 + $state.k5 + $state.k6 + $state.k7 + $state.k8 + $state.k9;
$state.w0 = sum;
$state.w1 = sum + 1;
$state.w2 = { sum, at: $args.at };
$state.w3 = [sum, sum * 2];
$state.w4 = 'done';
$emit('changed', { sum });
$emit('touched', { keys: 10 });
$view.update('total', { text: String(sum) });
return sum;
