"""The bundled demo and test servers: nothing here runs against a real endpoint.

Owns the model server (`model_server`: a container's /ping and /invocations with N slots and
a service-time law, as `python -m tuner.demo.model_server`), the helpers that start it and a
local moto AWS API as subprocesses and create a SageMaker endpoint there (`servers`), and
`tuner demo` itself (`run`). The benchmarks and the integration tests use the same servers.
Submodules are imported by name; importing the package loads none of them (the model
server's process starts fast).
"""

__all__ = ["model_server", "run", "servers"]
