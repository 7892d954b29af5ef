"""Supervised pretraining pieces: windows of tunes, the train loop, resume state, DDP, logs.

The task entry point is :mod:`rlmusic.tasks.pretrain`; these modules are what it assembles.
"""
