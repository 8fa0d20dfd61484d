"""lfmri benchmark: degradation throughput, SRDenseNet training throughput, inference latency and
achieved GFLOP/s against a large float32 matrix product, and a table of every model of the zoo
(parameters, multiply-accumulates, latency relative to SRDenseNet, peak memory), and ``predict``
on a 256 x 256 x 150 volume with and without tiling, in one run.

    python benchmarks/bench.py [--steps 10] [--repeats 5] [--section foundation|inference|models|predict|data|all]
    python benchmarks/bench.py --section predict-real --ckpt CKPT --volume SCAN.nii.gz [--run-slices 16]

Figures to quote are the ratios (machine-independent-ish): absolute times only mean something for
the machine printed in the header. Ratios in ``foundation``/``inference``/``predict-real`` come from
variants alternated with their reference in one process (``timing.py``), min and median, with the
load average and thread count printed beside them.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # timing.py and the sections beside this file

from bench_data import print_data, print_device_data  # noqa: E402
from bench_foundation import print_foundation, print_inference_efficiency  # noqa: E402
from bench_models import print_model_table  # noqa: E402
from bench_predict import print_predict, print_predict_real  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--section", choices=["foundation", "inference", "models", "predict", "data", "all", "predict-real"], default="all",
                        help="predict-real (not in all): --ckpt and --volume, a trained checkpoint on a real volume")
    parser.add_argument("--ckpt", help="predict-real: a trained checkpoint")
    parser.add_argument("--volume", help="predict-real: a real NIfTI volume")
    parser.add_argument("--run-slices", type=int, default=16, help="predict-real: slices predicted per repeat")
    parser.add_argument("--parity", action=argparse.BooleanOptionalAction, default=True, help="predict-real: also measure bf16 parity against the HR")
    parser.add_argument("--volume-slices", type=int, default=150, help="slices of the predict volume actually run (predict); "
                        "slices of the real volume the per-volume time is given for (predict-real)")
    args = parser.parse_args()
    from timing import machine_state

    print(f"machine: {platform.processor() or platform.machine()}; {machine_state()}")
    if args.section in ("foundation", "all"):
        print_foundation(args)
    if args.section == "inference":  # the inference-efficiency table of foundation alone
        print_inference_efficiency(args.repeats)
    if args.section in ("models", "all"):
        print_model_table(max(3, args.repeats // 3))
    if args.section in ("predict", "all"):
        print_predict(args.volume_slices)
    if args.section in ("data", "all"):
        print_device_data(args)
        print_data(args)
    if args.section == "predict-real":
        if not (args.ckpt and args.volume):
            parser.error("--section predict-real needs --ckpt and --volume")
        print_predict_real(args)


if __name__ == "__main__":
    main()
