#!/usr/bin/env python3
"""Independent oracle for kiln-clean, built on pandas.

  clean_oracle.py gen OUT.csv ROWS SEED        a seeded test CSV
  clean_oracle.py expect IN.csv OUT.csv [ops]  what kiln-clean should write
  clean_oracle.py compare GOT.csv WANT.csv     same columns, values within
                                               |a-b| <= 1e-9 * max(1, |a|, |b|)
  clean_oracle.py summary SUMMARY.json IN.csv [ops]  check the JSON summary
ops: --dedup --impute mean|median|most_frequent --clip zscore:K
     --scale standard|minmax --onehot K   (applied in kiln-clean's order)
"""
import json
import math
import random
import sys

import pandas as pd

NA = ["", "NA", "N/A", "n/a", "null", "NULL", "NaN", "nan", "None"]


def gen(out, rows, seed):
    rnd = random.Random(seed)
    cats = ["red", "green", "blue", "dark, grey", 'say "hi"', "two\nlines", "x"]
    with open(out, "w", newline="") as f:
        f.write("id,price,qty,color,score\r\n")
        prev = None
        for i in range(rows):
            if prev and rnd.random() < 0.05:
                f.write(prev)       # an exact duplicate row
                continue
            price = "NA" if rnd.random() < 0.1 else repr(round(rnd.gauss(50, 10), 6))
            if rnd.random() < 0.02:
                price = repr(rnd.choice([1000.5, -900.25]))   # outliers
            qty = "" if rnd.random() < 0.1 else str(rnd.randint(0, 20))
            c = rnd.choices(cats, weights=[30, 20, 15, 10, 5, 3, 1])[0]
            color = "" if rnd.random() < 0.08 else '"' + c.replace('"', '""') + '"'
            score = repr(rnd.random() * 3)
            prev = "%d,%s,%s,%s,%s\r\n" % (i % (rows // 2 + 1), price, qty, color, score)
            f.write(prev)


def parse_ops(args):
    ops = {"dedup": False, "impute": None, "clip": None, "scale": None, "onehot": 0}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--dedup":
            ops["dedup"] = True
        else:
            i += 1
            ops[a[2:]] = args[i]
        i += 1
    return ops


def read(path):
    return pd.read_csv(path, keep_default_na=False, na_values=NA)


def apply(df, ops):
    if ops["dedup"]:
        df = df.drop_duplicates().reset_index(drop=True)
    num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    cat = [c for c in df.columns if c not in num]
    if ops["impute"]:
        for c in df.columns:
            s = df[c]
            if c in cat or ops["impute"] == "most_frequent":
                fill = s.mode().iloc[0] if s.notna().any() else None
            elif ops["impute"] == "mean":
                fill = s.mean()
            else:
                fill = s.median()
            if fill is not None:
                df[c] = s.fillna(fill)
    if ops["clip"]:
        how, k = ops["clip"].split(":")
        k = float(k)
        for c in num:
            s = df[c].astype(float)
            if how == "zscore":
                lo, hi = s.mean() - k * s.std(), s.mean() + k * s.std()
            else:
                q1, q3 = s.quantile(0.25), s.quantile(0.75)
                lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
            df[c] = s.clip(lo, hi)
    stats = {c: df[c].astype(float) for c in num}
    stats_cat = {c: df[c].value_counts() for c in cat}
    if ops["scale"]:
        for c in num:
            s = df[c].astype(float)
            if ops["scale"] == "standard":
                d = s.std()
                df[c] = (s - s.mean()) / d if d > 0 else s * 0
            else:
                d = s.max() - s.min()
                df[c] = (s - s.min()) / d if d > 0 else s * 0
    k = int(ops["onehot"])
    if k:
        out = {}
        for c in df.columns:
            if c not in cat:
                out[c] = df[c]
                continue
            vc = sorted(df[c].value_counts().items(), key=lambda kv: (-kv[1], kv[0].encode()))
            top = [v for v, _ in vc[:k]]
            for v in top:
                out["%s=%s" % (c, v)] = (df[c] == v).astype(int)
            if len(vc) > k:
                out[c + "=__other__"] = (df[c].notna() & ~df[c].isin(top)).astype(int)
        df = pd.DataFrame(out)
    return df, stats, stats_cat


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def compare(got_path, want_path):
    got, want = read(got_path), read(want_path)
    bad = []
    if list(got.columns) != list(want.columns):
        bad.append("columns %s != %s" % (list(got.columns), list(want.columns)))
    elif got.shape != want.shape:
        bad.append("shape %s != %s" % (got.shape, want.shape))
    else:
        for c in got.columns:
            for i, (a, b) in enumerate(zip(got[c], want[c])):
                na, nb = pd.isna(a), pd.isna(b)
                if na or nb:
                    ok = na and nb
                elif isinstance(a, str) or isinstance(b, str):
                    ok = str(a) == str(b)
                else:
                    ok = close(float(a), float(b))
                if not ok:
                    bad.append("column %s row %d: got %r want %r" % (c, i, a, b))
                    break
    for b in bad:
        print("# " + b)
    return not bad


def summary(path, inp, ops):
    s = json.load(open(path))
    df0 = read(inp)
    df, stats, stats_cat = apply(df0.copy(), ops)
    bad = []
    if s["rows_in"] != len(df0):
        bad.append("rows_in %d != %d" % (s["rows_in"], len(df0)))
    if s["rows_out"] != len(df):
        bad.append("rows_out %d != %d" % (s["rows_out"], len(df)))
    for col in s["columns"]:
        name = col["name"]
        if col["missing"] != int(df0[name].isna().sum()):
            bad.append("%s: missing %d != %d" % (name, col["missing"], df0[name].isna().sum()))
        if name in stats:
            x = stats[name]
            for key, want in (("mean", x.mean()), ("std", x.std()), ("min", x.min()), ("max", x.max())):
                if not close(col[key], float(want)):
                    bad.append("%s: %s %r != %r" % (name, key, col[key], want))
        else:
            for v, n in stats_cat[name].items():
                if v in col["categories"] and col["categories"][v] != n:
                    bad.append("%s: count of %r %d != %d" % (name, v, col["categories"][v], n))
    for b in bad:
        print("# " + b)
    return not bad


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "expect":
        df, _, _ = apply(read(sys.argv[2]), parse_ops(sys.argv[4:]))
        df.to_csv(sys.argv[3], index=False, float_format="%.17g")
    elif cmd == "compare":
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)
    elif cmd == "summary":
        sys.exit(0 if summary(sys.argv[2], sys.argv[3], parse_ops(sys.argv[4:])) else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
