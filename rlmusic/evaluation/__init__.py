"""Evaluation: RL Tuner statistics, realism measures, comparisons and reports."""
