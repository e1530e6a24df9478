"""PushT benchmark: base, online, adversarial and both-finetuned world models x GD / CEM / MPPI.

Run: python benchmarks/pusht.py [--quick] [--seed 0]   (needs: pip install 'torchrl_gbp[pusht]')
Prints the table (3 seeds x 50 episodes by default; an estimated 45 min on 2 cores from timed parts:
~100 s per CEM or MPPI evaluation, 25-90 s per finetuning) and writes it, with this
command, the machine, the paper's claims and the planned-state diagnostics,
to benchmarks/results/pusht.md.
"""
from common import run_benchmark

if __name__ == "__main__":
    run_benchmark("pusht")
