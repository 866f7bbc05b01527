#!/usr/bin/env python3
"""A seeded synthetic binary-classification CSV for benchmarks (no numpy needed).

    tools/gen_synthetic.py OUT.csv [--rows 1000000] [--features 20] [--seed 42]
                           [--noise 1.0] [--missing 0.0]

Ground truth: x ~ N(0, 1) per feature (feature j scaled by 1 + j % 5 and shifted
by j % 3, so standardizing matters), z = b + sum w_j * x_j with w_j ~ N(0, 1)
drawn from the same seed, and y = 1 with probability sigmoid(z / noise).  The
weights are printed on stderr.  --missing F leaves a seeded fraction F of the
feature values empty (for kiln-clean --impute).  The same arguments give the
same file byte for byte (Python's random.Random, Mersenne Twister)."""
import argparse
import math
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--missing", type=float, default=0.0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    d = a.features
    w = [rng.gauss(0, 1) for _ in range(d)]
    b = rng.gauss(0, 0.5)
    scale = [1 + j % 5 for j in range(d)]
    shift = [j % 3 for j in range(d)]
    print("weights (on the unscaled x):", " ".join("%.4f" % v for v in w), "bias %.4f" % b,
          file=sys.stderr)
    with open(a.out, "w") as f:
        f.write(",".join(["f%d" % j for j in range(d)] + ["target"]) + "\n")
        for _ in range(a.rows):
            x = [rng.gauss(0, 1) for _ in range(d)]
            z = b + sum(wj * xj for wj, xj in zip(w, x))
            z /= a.noise
            p = 1 / (1 + math.exp(-z)) if z > -700 else 0.0
            y = 1 if rng.random() < p else 0
            cells = []
            for j in range(d):
                if a.missing > 0 and rng.random() < a.missing:
                    cells.append("")
                else:
                    cells.append("%.6g" % (x[j] * scale[j] + shift[j]))
            f.write(",".join(cells) + ",%d\n" % y)


if __name__ == "__main__":
    main()
