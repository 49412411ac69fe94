"""Carrying out the engine's training decisions in the embedded default.

``local.LocalOrchestrator`` trains in a subprocess, registers, validates on the held-out
split and promotes; ``seam`` is how it talks to the gateway (``GatewayHooks``, the
in-process form of the admin API that the Kubernetes operator drives over HTTP);
``datasets`` renders exports and trainer specs; ``trainer`` owns the subprocesses.
What a run trains on is selected by the gateway (``apprentice.gateway.training_data``).
"""
