"""What a target would do on real traffic: `tuner simulate`.

Owns per-minute traffic from a CSV or CloudWatch (`traffic`), the pure minute-by-minute
model of SageMaker target tracking over the measured latency curve and the sweep for the
cheapest target within a violation budget (`sweep`), and the command's shell that reads a
run, writes simulation.json and its plots and re-renders the report (`command`).
Submodules are imported by name; importing the package loads none of them.
"""

__all__ = ["command", "sweep", "traffic"]
