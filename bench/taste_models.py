#!/usr/bin/env python3
"""Learning from liked papers: the centroid paperboy uses against per-subscriber linear models,
on `paperboy eval`'s "more like these" mode (for each Inspec keyphrase with more than three
papers, its first three papers by id are the liked examples, the rest are hidden among all
2,000; recall@10 and MRR of the hidden ones, ranking by the direction's dot product).

Compared: the centroid of the examples; the centroid minus the day's mean; a shrunk linear
discriminant (the day's covariance plus `shrink` × its mean variance on the diagonal, inverted,
times centroid minus mean); logistic regression of the examples against 256 of the day's other
papers as negatives (each class half the weight, L2 `lam`, 300 steps of Nesterov gradient
descent). Not a test: the figures go to BENCHMARKS.md by hand.

The vectors are paperboy's own, read from a bench world (`bench/plan_meaning.sh` keeps none;
build one with `bench/scale_world.py`, `paperboy fetch` and `paperboy db embed`): paper
`2410.1NNNN` is the NNNN-th document of docs.jsonl.

Usage: bench/taste_models.py WORLD_DB [SHARED]     (needs numpy)
"""
import collections
import json
import sqlite3
import sys

import numpy as np

world, shared = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "../shared")
docs = [json.loads(l) for l in open(f"{shared}/eval/inspec/docs.jsonl") if l.strip()]
db = sqlite3.connect(world)
stored = {pid: np.frombuffer(b, dtype="<f2").astype(np.float32)
          for pid, b in db.execute("SELECT paper_id, vector FROM paper_vectors")}
ids = [d["id"] for d in docs]
X = np.stack([stored[f"2410.{10000 + i:05d}"] for i in range(len(docs))])
X /= np.linalg.norm(X, axis=1, keepdims=True)
position = {d: i for i, d in enumerate(ids)}
qrels = collections.defaultdict(set)
for line in open(f"{shared}/eval/inspec/qrels.tsv").read().splitlines()[1:]:
    if line.strip():
        query, doc, rel = line.rsplit("\t", 2)
        if int(rel) > 0:
            qrels[query].add(doc)
n = len(ids)
mean = X.mean(0)
cov = np.cov(X.T, bias=True)
mean_variance = np.trace(cov) / X.shape[1]


def evaluate(name, direction):
    recall = mrr = k = 0
    for query in sorted(qrels):
        known = sorted((position[d] for d in qrels[query] if d in position), key=lambda i: ids[i])
        if len(known) <= 3:
            continue
        examples, hidden = known[:3], set(known[3:])
        scores = X @ direction(examples)
        scores[examples] = -1e9
        order = np.argsort(-scores, kind="stable")[:50]
        recall += sum(1 for i in order[:10] if i in hidden) / len(hidden)
        first = next((r for r, i in enumerate(order) if i in hidden), None)
        if first is not None:
            mrr += 1 / (first + 1)
        k += 1
    print(f"{name:34s} recall@10 {recall / k:.4f}  MRR {mrr / k:.4f}  ({k} keyphrases)")


def centroid(examples):
    return X[examples].mean(0)


def logistic(examples, lam, negatives=256, steps=300):
    others = np.setdiff1d(np.arange(n), examples)
    negative = others[np.linspace(0, len(others) - 1, negatives).astype(int)]
    a = np.vstack([X[examples], X[negative]])
    y = np.r_[np.ones(len(examples)), np.zeros(len(negative))]
    weight = np.r_[np.full(len(examples), 0.5 / len(examples)), np.full(len(negative), 0.5 / len(negative))]
    w, b, prev_w, prev_b = np.zeros(a.shape[1]), 0.0, np.zeros(a.shape[1]), 0.0
    step = 1 / (0.25 + lam)
    for t in range(steps):
        m = t / (t + 3)
        yw, yb = w + m * (w - prev_w), b + m * (b - prev_b)
        err = weight * (1 / (1 + np.exp(-(a @ yw + yb))) - y)
        prev_w, prev_b = w, b
        w, b = yw - step * (a.T @ err + lam * yw), yb - step * err.sum()
    return w


evaluate("centroid (what paperboy uses)", centroid)
evaluate("centroid - day's mean", lambda ex: centroid(ex) - mean)
for shrink in [0.3, 1, 3, 10]:
    inverse = np.linalg.inv(cov + shrink * mean_variance * np.eye(cov.shape[0]))
    evaluate(f"linear discriminant, shrink {shrink}", lambda ex, inv=inverse: inv @ (centroid(ex) - mean))
for lam in [0.003, 0.01, 0.03, 0.1]:
    evaluate(f"logistic regression, L2 {lam}", lambda ex, lam=lam: logistic(ex, lam))
