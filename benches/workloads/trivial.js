return $args.a + $args.b;
