"""PointMaze benchmark: base, online, adversarial and both-finetuned world models x GD / CEM / MPPI.

Run: python benchmarks/pointmaze.py [--quick] [--seed 0]   (needs: pip install 'torchrl_gbp[pointmaze]')
Prints the table (3 seeds x 50 episodes on random U-maze pairs by default) and
writes it, with this command, the machine, the paper's claims and the
planned-state diagnostics, to benchmarks/results/pointmaze.md.
"""
from common import run_benchmark

if __name__ == "__main__":
    run_benchmark("pointmaze")
