"""Measuring what one endpoint sustains: from offered load to capacity, with its evidence.

Owns the pure core of the measurement (a step's evidence and verdict, the capacity interval
and the recommendation in `analysis`; the binomial tests in `stats`; the search in `search`;
the simulated queue behind the correlation of slow requests in `slow_correlation`,
`queueing`, the fitted latency curve in `queue_model` and the slow share's crossing fitted
to every rate in `curve_fit`; the whole search offline in
`offline`), the messages and state machines inside the Locust process (`wire`, `lanes`,
`controller`, `pacing`), the request bodies a run replays (`payloads`, read from a
directory, archive, JSON Lines or S3 Data Capture by `payload_sources`; latency by payload in
`payload_stats`) and the shell that
runs Locust as a subprocess and analyses what it wrote (`loadtest`, `analyse`, `progress`,
and `sigv4` for the runtime API's signed path). Nothing here imports Prefect; only
`loadtest`, `payload_sources` and `sigv4` touch the outside world.
Submodules are imported by name; importing the package loads none of them.
"""

__all__ = ["analyse", "analysis", "controller", "curve_fit", "lanes", "loadtest", "offline",
           "pacing", "payload_sources", "payload_stats", "payloads", "progress", "queue_model",
           "queueing", "search", "sigv4", "slow_correlation", "stats", "wire"]
