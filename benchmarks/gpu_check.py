"""One prepared GPU check: the CUDA-marked tests, then full-size DINO-WM planning timed in fp32, bf16 and compiled.

Run: python benchmarks/gpu_check.py [--device cuda] [--tiny] [--out DIR] [--skip-tests]
     [--variants fp32,bf16,compiled] [--repeats 2]

On one GPU it runs in minutes (the issue's limit: 8):

1. ``pytest -m cuda tests/test_device.py``: the tests that need a CUDA device (skipped on other devices);
2. a DINO-WM model of the released size with random weights: DINOv2 ViT-S/14 (a random encoder of the real
   size, 224-pixel images, 196 tokens of 384) and the 6-layer ViT predictor, one-frame rollout;
3. one GD MPC step (encode 50 observations and goals, then 100 Adam steps at H=5 over 50 envs) and one CEM
   iteration (300 samples of one env), each in fp32 (TF32 products on CUDA, the planners' default), under
   bf16 autocast (cost in fp32) and compiled (``torch.compile`` with ``mode="reduce-overhead"`` on CUDA: CUDA
   graphs); seconds (first call, which compiles, and the median of ``--repeats``) and peak memory;
4. the FLOP-count limit beside each time: FLOPs of the call (``torch.utils.flop_counter`` on the meta
   device) over the device's peak rate, where the device is in :data:`PEAK_TFLOPS`.

``--tiny`` shrinks every size (the test suite runs ``--device cpu --tiny`` so the script cannot rot). Prints the
report and saves the raw figures as ``benchmarks/results/raw/gpu_check_<device>[_tiny].json``, then renders their
page in ``docs/results/`` (``benchmarks/regenerate.py``); ``--out DIR`` writes the raw file into ``DIR`` instead
(a device machine's ``$OUT``: copy it into ``raw/`` and run ``regenerate.py`` to render the page).
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from regenerate import save_raw, update
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from torchrl_gbp.bridges import DinoWMConfig, DinoWMWorldModel
from torchrl_gbp.planners import CEMOptions, GradientOptions, make_planner

ROOT = Path(__file__).resolve().parent.parent
# Dense peak TFLOP/s by device name fragment: (fp32 with TF32 products, bf16), from the vendors' data sheets.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {"H100": (494.7, 989.4), "H200": (494.7, 989.4),
                                               "A100": (156.0, 312.0)}
VIT_S14 = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536,
           "patch_size": 14, "image_size": 518}


@dataclass(frozen=True)
class Sizes:
    """What the check plans with: envs, GD steps, CEM samples, horizon, and the model's size."""

    envs: int = 50
    gd_steps: int = 100
    cem_samples: int = 300
    horizon: int = 5
    image_size: int = 224
    dinov2: tuple[tuple[str, int], ...] = tuple(VIT_S14.items())
    predictor: tuple[tuple[str, int], ...] = ()

    @classmethod
    def tiny(cls) -> Sizes:
        """Every size small enough for a CPU test (seconds)."""
        return cls(envs=2, gd_steps=2, cem_samples=8, horizon=2, image_size=32,
                   dinov2=(("hidden_size", 16), ("num_hidden_layers", 1), ("num_attention_heads", 2),
                           ("intermediate_size", 32), ("patch_size", 14), ("image_size", 28)),
                   predictor=(("depth", 1), ("heads", 2), ("dim_head", 8), ("mlp_dim", 32)))

    def model(self, device: torch.device | str) -> DinoWMWorldModel:
        """The DINO-WM model of these sizes, random weights, frozen, in eval mode, on ``device``."""
        dinov2 = dict(self.dinov2)
        config = DinoWMConfig(env_action_dim=2, proprio_in_dim=4, rollout="one_frame", encoder="dinov2",
                              dinov2=dinov2, image_size=self.image_size,
                              num_patches=(self.image_size // 16) ** 2, visual_dim=dinov2["hidden_size"],
                              **dict(self.predictor))
        model = DinoWMWorldModel(config).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model.to(device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak bytes since the last reset: CUDA's allocator, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(call: Callable[[], object], device: torch.device, repeats: int) -> dict:
    """First-call seconds, the median of ``repeats`` more, and the peak memory over all of them."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return {"first_s": seconds[0], "median_s": statistics.median(seconds[1:]),
            "peak_memory_bytes": peak_memory_bytes(device)}


def workloads(model: DinoWMWorldModel, sizes: Sizes, device: torch.device, variant: str) -> dict[str, Callable]:
    """The GD MPC step and the CEM iteration of ``variant`` (``fp32``, ``bf16``, ``compiled``) as calls."""
    options = {"fp32": {}, "bf16": {"autocast_dtype": torch.bfloat16},
               "compiled": {"compile": "reduce-overhead" if device.type == "cuda" else True}}[variant]
    generator = None if device.type == "meta" else torch.Generator(device=device).manual_seed(0)
    pixels = torch.rand(sizes.envs, 3, sizes.image_size, sizes.image_size, device=device)
    proprio = torch.randn(sizes.envs, 4, device=device)
    gd = make_planner(GradientOptions(steps=sizes.gd_steps), model, horizon=sizes.horizon, **options)
    cem = make_planner(CEMOptions(samples=sizes.cem_samples, elites=min(30, sizes.cem_samples), iterations=1), model,
                       horizon=sizes.horizon, **options)

    @torch.no_grad()
    def gd_mpc_step() -> None:
        z, goal = model.encode(pixels, proprio), model.encode(pixels.flip(0), proprio.flip(0))
        gd.plan(z.unsqueeze(1), z.new_zeros(sizes.envs, 0, model.action_dim), goal, generator=generator)

    z_one = torch.randn(1, 1, model.latent_dim, device=device)

    def cem_iteration() -> None:
        cem.plan(z_one, z_one.new_zeros(1, 0, model.action_dim), z_one[:, 0], generator=generator)

    return {"gd_mpc_step": gd_mpc_step, "cem_iteration": cem_iteration}


class FlopCount(TorchDispatchMode):
    """Sums the FLOPs of the ops ``torch.utils.flop_counter`` has formulas for (matrix products, attention,
    convolutions); unlike its ``FlopCounterMode`` it hooks no module, so ``torch.autograd.grad`` runs inside."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def flop_counts(sizes: Sizes) -> dict[str, int]:
    """FLOPs of one GD MPC step and one CEM iteration, counted on the meta device (nothing computed); the GD
    step's from its counts at 1 and 2 Adam steps (each step costs the same)."""
    model = sizes.model("meta")
    counts = {}
    for steps in (1, 2):
        for name, call in workloads(model, replace(sizes, gd_steps=steps), torch.device("meta"), "fp32").items():
            with FlopCount() as counter:
                call()
            counts[name, steps] = counter.flops
    per_step = counts["gd_mpc_step", 2] - counts["gd_mpc_step", 1]
    return {"gd_mpc_step": counts["gd_mpc_step", 1] + (sizes.gd_steps - 1) * per_step,
            "cem_iteration": counts["cem_iteration", 1]}


def run_tests(device: torch.device) -> dict:
    """The CUDA-marked tests, in a child pytest (on other devices there are none to run)."""
    if device.type != "cuda":
        return {"status": f"skipped: the CUDA-marked tests need a CUDA device, this run is on {device.type}"}
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_device.py", "-q",
                            "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)
    return {"status": "passed" if child.returncode == 0 else f"failed (exit {child.returncode})",
            "seconds": time.perf_counter() - start, "output_tail": child.stdout[-3000:]}


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU's architecture."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"


def report_text(raw: dict) -> str:
    """The page's text from the raw figures."""
    peak = raw["peak_tflops"]
    lines = [f"# GPU check: {raw['device_name']}\n", f"Command: `{raw['command']}`; torch {raw['torch']}; sizes "
             f"{raw['sizes']}.\n", f"CUDA-marked tests: {raw['tests']['status']}.\n",
             "| workload | variant | first call s | median s | peak memory GB | FLOP-count limit s | median / limit |",
             "|---|---|---|---|---|---|---|"]
    for row in raw["timings"]:
        flops = raw["flops"][row["workload"]]
        limit = None if peak is None else flops / (1e12 * peak[1 if row["variant"] == "bf16" else 0])
        bound = "" if limit is None else f"{limit:.4f}"
        ratio = "" if limit is None else f"{row['median_s'] / limit:.1f}"
        lines.append(f"| {row['workload']} | {row['variant']} | {row['first_s']:.3f} | {row['median_s']:.3f} | "
                     f"{row['peak_memory_bytes'] / 2**30:.2f} | {bound} | {ratio} |")
    lines += ["", f"FLOPs: {', '.join(f'{k} {v / 1e9:.3g} GFLOP' for k, v in raw['flops'].items())} (counted on "
              "meta). " + ("Limit: FLOPs over the dense peak rate (TF32 for fp32, bf16)." if peak else
                           "No peak rate is known for this device, so no limit."),
              "" if raw["device"] == "cuda" else "Peak memory on the CPU is the process's peak resident memory.", ""]
    return "\n".join(lines)


def main() -> None:
    """Run the tests, time every workload and variant, print the report, save the raw figures (and render)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the test suite's CPU run)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls after the first")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the raw figures into this folder instead of benchmarks/results/raw (no page)")
    parser.add_argument("--skip-tests", action="store_true", help="time only")
    parser.add_argument("--variants", default="fp32,bf16,compiled",
                        help="comma-separated variants (the suite's CPU run leaves out compiled: a minute of "
                             "compilation on a CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: --device cuda but torch sees no CUDA device; run with --device cpu --tiny")
    sizes = Sizes.tiny() if args.tiny else Sizes()
    tests = {"status": "skipped (--skip-tests)"} if args.skip_tests else run_tests(device)
    print(f"tests: {tests['status']}", flush=True)
    model = sizes.model(device)
    timings = []
    for variant in args.variants.split(","):
        for name, call in workloads(model, sizes, device, variant).items():
            row = {"workload": name, "variant": variant, **timed(call, device, args.repeats)}
            print(row, flush=True)
            timings.append(row)
    name = device_name(device)
    suffix = f"{device.type}{'_tiny' if args.tiny else ''}"
    raw = {"command": "python benchmarks/gpu_check.py" + " ".join([""] + sys.argv[1:]), "device": device.type,
           "device_name": name, "torch": torch.__version__, "sizes": asdict(sizes), "tests": tests,
           "flops": flop_counts(sizes), "timings": timings,
           "peak_tflops": next((v for k, v in PEAK_TFLOPS.items() if k in name), None)}
    print(report_text(raw))
    if args.out is not None:
        print("written:", save_raw(f"gpu_check_{suffix}", raw, args.out))
        return
    save_raw(f"gpu_check_{suffix}", raw)
    print("rewritten:", *update())


if __name__ == "__main__":
    main()
