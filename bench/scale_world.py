#!/usr/bin/env python3
"""The world of bench/scale.sh: one day of papers in the Hugging Face format and N subscribers
as the CSV that `paperboy subscriber import` reads.

Papers: the 2,000 Inspec abstracts (../shared/eval/inspec/docs.jsonl, read in place) with real
author names from the Hugging Face fixtures, arXiv-style ids and skewed upvotes. Subscribers:
interests made of the documents' own keyphrases and title words (some quoted, some with a
`-word` or an `author:` field), and for some a followed author, categories or an example paper.
Seeded, so every run builds the same world.

Usage: scale_world.py DOCS HF_FIXTURE_DIR N OUT_DIR  -> OUT_DIR/papers.json, OUT_DIR/subscribers.csv
"""

import csv
import glob
import json
import random
import sys

docs_path, fixture_dir, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(20261128)

docs = [json.loads(line) for line in open(docs_path) if line.strip()]

names = set()
for path in glob.glob(f"{fixture_dir}/*.json"):
    data = json.load(open(path))
    items = data if isinstance(data, list) else [data]
    for item in items:
        for a in item.get("paper", {}).get("authors", []):
            if a.get("name"):
                names.add(a["name"])
names = sorted(names)
# More authors than the fixtures hold: first and last names recombined.
firsts = sorted({n.split()[0] for n in names if " " in n})
lasts = sorted({n.split()[-1] for n in names if " " in n})
pool = names + [f"{rng.choice(firsts)} {rng.choice(lasts)}" for _ in range(3000)]

CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.AI", "stat.ML", "cs.IR", "cs.RO", "cs.NE", "cs",
              "math.OC", "eess.SP", "q-bio.NC"]

papers = []
for i, d in enumerate(docs):
    arxiv = f"2410.{10000 + i:05d}"
    authors = rng.sample(pool, rng.randint(1, 8))
    upvotes = int(rng.paretovariate(1.3)) - 1
    papers.append({
        "paper": {
            "id": arxiv,
            "authors": [{"name": a, "hidden": False} for a in authors],
            "publishedAt": "2024-10-24T17:59:30.000Z",
            "title": d["title"],
            "summary": d["abstract"],
            "upvotes": min(upvotes, 500),
        },
        "publishedAt": "2024-10-25T01:00:00.000Z",
        "title": d["title"],
        "numComments": 0,
    })
json.dump(papers, open(f"{out}/papers.json", "w"))

phrases = [p for d in docs for p in d.get("keyphrases", [])
           if all(c.isalnum() or c in " -" for c in p)]
words = [w.lower() for d in docs for w in d["title"].split() if w.isalpha() and len(w) > 4]
paper_authors = [a["name"] for p in papers for a in p["paper"]["authors"]]


def interests():
    parts = []
    for _ in range(rng.randint(1, 3)):
        p = rng.choice(phrases)
        parts.append(f'"{p}"' if " " in p and rng.random() < 1 / 3 else p)
    roll = rng.random()
    if roll < 0.1:
        parts.append(f"-{rng.choice(words)}")
    elif roll < 0.15:
        parts.append(f'author:"{rng.choice(paper_authors)}"')
    elif roll < 0.25:
        parts.append(rng.choice(words))
    return " ".join(parts)


with open(f"{out}/subscribers.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["email", "status", "interests", "frequency", "send_time", "timezone",
                "max_papers", "authors", "categories", "category_mode", "examples"])
    for i in range(n):
        authors = "; ".join(rng.sample(paper_authors, rng.randint(1, 2))) if rng.random() < 0.2 else ""
        cats = "; ".join(rng.sample(CATEGORIES, rng.randint(1, 2))) if rng.random() < 0.2 else ""
        examples = rng.choice(papers)["paper"]["id"] if rng.random() < 0.05 else ""
        w.writerow([f"reader{i:07d}@example.net", "active", interests(), "daily", "07:00", "UTC",
                    10, authors, cats, "boost", examples])
