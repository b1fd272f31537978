"""Experiments over the core (data → models → training → ensemble → submission): the study's
evaluation and learning curve, training studies, robustness, baselines, the hyperparameter search,
the flagship's levers, the benchmark, data exploration and the comparison report."""
