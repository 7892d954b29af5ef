"""Task entry points: ``rlmusic <task>`` runs ``rlmusic.tasks.<task>.run(cfg)``.

Each task reads its config, calls the library and writes its artefacts; it returns a result
(the CLI hands its configured objective to Hydra, so sweepers can optimise it). Nothing in
the library imports a task.
"""
