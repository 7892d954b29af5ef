"""rlmusic's Hydra configs (installed as the package ``rlmusic.conf``).

Importing it registers each algorithm's config class as the structured schema
``algo/<name>_schema`` (package ``algo``) in Hydra's ConfigStore: conf/algo/<name>.yaml starts
its defaults with it, so the class holds every key, type and default, and the YAML only the
values that differ on purpose. Hydra imports this package before composing, whether it was
named by ``initialize_config_module("rlmusic.conf")`` or ``config_path="pkg://rlmusic.conf"``.
"""

from hydra.core.config_store import ConfigStore

from rlmusic.algos import CONFIGS, get_config_class
from rlmusic.algos.settings import node_schema


def register_algo_schemas() -> None:
    """Store every algorithm's ``algo`` node schema (idempotent)."""
    store = ConfigStore.instance()
    for name in CONFIGS:
        schema = node_schema(get_config_class(name))
        store.store(group="algo", name=f"{name}_schema", node=schema, package="algo")


register_algo_schemas()
