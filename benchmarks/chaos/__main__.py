"""`python -m benchmarks.chaos [--short]`: see the package's docstring."""

import argparse

from benchmarks.chaos import __doc__ as DESCRIPTION
from benchmarks.chaos.report import main
from benchmarks.common import run_benchmark

parser = argparse.ArgumentParser(description=DESCRIPTION.split("\n\n")[0])
parser.add_argument("--releases", type=int, default=None, help="releases in the soak (100; 12 with --short)")
parser.add_argument("--services", type=int, default=None, help="services released in parallel (4; 2 with --short)")
parser.add_argument("--worker-kills", type=int, default=None, help="random worker SIGKILLs (10; 2 with --short)")
parser.add_argument("--short", action="store_true", help="the CI version: under ~3 minutes on 2 cores")
parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
run_benchmark(main, parser)
