"""Entry points and the machinery of one evaluation cell: config, training loop, rollouts, records."""
