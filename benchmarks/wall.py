"""Wall benchmark: base, online, adversarial and both-finetuned world models x GD / CEM / MPPI.

Run: python benchmarks/wall.py [--quick] [--seed 0]
Prints the table (3 seeds x 50 episodes by default) and writes it, with this
command, the machine, the paper's claims and the planned-state diagnostics,
to benchmarks/results/wall.md.
"""
from common import run_benchmark

if __name__ == "__main__":
    run_benchmark("wall")
