"""Mutants for scripts/mutation_check.py: one module per learner family, each with MUTANTS."""
