"""Wall benchmark: base, online, adversarial and both-finetuned world models x GD / CEM / MPPI.

Run: python benchmarks/wall.py [--quick] [--seed 0]
Prints the table (3 seeds x 50 episodes by default) and writes it, with this
command, the machine and the paper's claims checked, to benchmarks/results/wall.md.
"""
import argparse
import platform
import sys
from pathlib import Path

import torch

from torchrl_gbp.pipeline import reproduce

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="runs/benchmark")
args = parser.parse_args()

result = reproduce("wall", args.out, quick=args.quick, seed=args.seed)
command = "python benchmarks/wall.py" + " ".join([""] + sys.argv[1:])
machine = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
report = (f"# Wall\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{result['table']}\n\n{result['note']}.\n\n"
          "Seconds per plan are for one planning call batched over all episodes of a seed (median over calls "
          "and seeds); 'time vs CEM on base' divides by that of CEM on the base model.\n\n"
          f"## The paper's claims here\n\n{result['claims']}\n")
path = Path(__file__).parent / "results" / "wall.md"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(report)
print(report)
