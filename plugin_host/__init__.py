"""Effect chains for jenbridge results: pedalboard effects and third-party plugins from YAML.

    chain = EffectChain(load_chain_file("master.yaml"), sample_rate=48000, channels=2)
    out = chain.process(audio)              # offline, (2, n) -> (2, n), latency compensated
    with chain.stream() as live:            # chunks of any size, chain.latency_samples late
        block_out = live.process(block)

Every built-in pedalboard effect is available by class name with its keyword arguments
(effects.py); VST3 plugins (AU on macOS) run in a worker process each (isolated.py,
worker.py), so one that crashes or hangs raises PluginError and the caller goes on. See
docs/effects.md.
"""

from plugin_host.chain import EffectChain
from plugin_host.effects import builtin_effects
from plugin_host.errors import ChainError, PluginError
from plugin_host.spec import (
    ChainSpec,
    EffectItem,
    PluginItem,
    load_chain_file,
    parse_chain,
)
from plugin_host.stream import ChainStream

__all__ = [
    "ChainError",
    "ChainSpec",
    "ChainStream",
    "EffectChain",
    "EffectItem",
    "PluginError",
    "PluginItem",
    "builtin_effects",
    "load_chain_file",
    "parse_chain",
]
