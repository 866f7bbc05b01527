#!/usr/bin/env python3
"""Compares kiln-train/kiln-eval with scikit-learn on the data sets it ships.

For breast_cancer, wine and iris: a fixed stratified split (70/30,
random_state=0) is written to CSV; scikit-learn fits
StandardScaler + LogisticRegression(max_iter=10000) (lbfgs, C=1.0: the same
objective kiln-train minimizes by default, on the same standardized features)
and kiln-train fits the CSV; both are scored on the same rows.  For diabetes:
LinearRegression and Ridge(alpha=1) against kiln-train --kind linear.

Writes one tab-separated line per comparison to OUT:
    name  kiln_value  sklearn_value  tolerance
and prints a readable table on stdout.  Exits 2 if a kiln program fails.

usage: sklearn_compare.py KILN_TRAIN KILN_EVAL WORKDIR OUT
"""
import json
import os
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TRAIN, EVAL, WORK, OUT = sys.argv[1:5]
rows = []


def write_csv(path, X, y):
    with open(path, "w") as f:
        f.write(",".join(["f%d" % j for j in range(X.shape[1])] + ["target"]) + "\n")
        for xi, yi in zip(X, y):
            f.write(",".join(repr(float(v)) for v in xi) + "," + repr(float(yi) if isinstance(yi, float) else int(yi)) + "\n")


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write("FAILED (%d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
        sys.exit(2)
    return p


def kiln_fit_eval(name, train_csv, test_csv, extra):
    model = os.path.join(WORK, name + ".model.json")
    p = run([TRAIN, "--data", train_csv, "--out", model] + extra)
    with open(os.path.join(WORK, name + ".train.log"), "w") as f:
        f.write(p.stderr)
    tr = json.loads(run([EVAL, "--model", model, "--data", train_csv]).stdout)
    te = json.loads(run([EVAL, "--model", model, "--data", test_csv]).stdout)
    return tr, te


def add(name, kiln, ref, tol):
    rows.append((name, kiln, ref, tol))


for name, loader in (("breast_cancer", load_breast_cancer), ("wine", load_wine), ("iris", load_iris)):
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    trc, tec = os.path.join(WORK, name + ".train.csv"), os.path.join(WORK, name + ".test.csv")
    write_csv(trc, Xtr, ytr)
    write_csv(tec, Xte, yte)
    sk = make_pipeline(StandardScaler(), LogisticRegression(max_iter=10000)).fit(Xtr, ytr)
    raw = LogisticRegression(max_iter=10000).fit(Xtr, ytr)  # unscaled, for information
    ktr, kte = kiln_fit_eval(name, trc, tec, [])
    add(name + " train accuracy", ktr["accuracy"], accuracy_score(ytr, sk.predict(Xtr)), 0.01)
    add(name + " test accuracy", kte["accuracy"], accuracy_score(yte, sk.predict(Xte)), 0.01)
    add(name + " test log loss", kte["log_loss"], log_loss(yte, sk.predict_proba(Xte)), 0.002)
    add(name + " test accuracy (sklearn unscaled LR, info)", kte["accuracy"], accuracy_score(yte, raw.predict(Xte)), None)
    # mini-batch solvers: close to the full-batch optimum, not equal to it
    atr, ate = kiln_fit_eval(name + "-adam", trc, tec, ["--solver", "adam", "--lr", "0.01", "--batch-size", "16",
                                                       "--epochs", "300", "--val-fraction", "0.15", "--seed", "3"])
    add(name + " test accuracy, kiln adam+early stopping", ate["accuracy"], accuracy_score(yte, sk.predict(Xte)), 0.05)
    str_, ste = kiln_fit_eval(name + "-sgd", trc, tec, ["--solver", "sgd", "--lr", "0.01", "--momentum", "0.9",
                                                       "--epochs", "200", "--seed", "3"])
    add(name + " test accuracy, kiln sgd+momentum", ste["accuracy"], accuracy_score(yte, sk.predict(Xte)), 0.05)

X, y = load_diabetes(return_X_y=True)
y = y.astype(float)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
trc, tec = os.path.join(WORK, "diabetes.train.csv"), os.path.join(WORK, "diabetes.test.csv")
write_csv(trc, Xtr, ytr)
write_csv(tec, Xte, yte)
lin = LinearRegression().fit(Xtr, ytr)
ktr, kte = kiln_fit_eval("diabetes-linear", trc, tec, ["--kind", "linear"])
add("diabetes train R2 vs LinearRegression", ktr["r2"], r2_score(ytr, lin.predict(Xtr)), 0.01)
add("diabetes test R2 vs LinearRegression", kte["r2"], r2_score(yte, lin.predict(Xte)), 0.01)
ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(Xtr, ytr)
ktr, kte = kiln_fit_eval("diabetes-ridge", trc, tec, ["--kind", "linear", "--C", "1"])
add("diabetes test R2 vs Ridge(alpha=1)", kte["r2"], r2_score(yte, ridge.predict(Xte)), 0.01)

with open(OUT, "w") as f:
    for name, k, r, tol in rows:
        f.write("%s\t%.6f\t%.6f\t%s\n" % (name, k, r, "-" if tol is None else tol))
print("%-55s %10s %10s" % ("comparison", "kiln", "sklearn"))
for name, k, r, tol in rows:
    print("%-55s %10.4f %10.4f" % (name, k, r))
