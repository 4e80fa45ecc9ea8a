"""A small synthetic ``../shared/data`` tree with every source the sciembed-lite recipe reads.

Papers of different sources never share a title, except on purpose: ``SHARED_TITLE`` is both an ACL
Anthology paper (a training source) and an ICLR 2021 submission, a SPECTER triplet paper, a search
candidate, an OHSUMED, an S2ORC and an Inspec paper, so the out-of-training tasks must drop it.

"""

from __future__ import annotations

import csv
import gzip
import json
import random
import zipfile
from pathlib import Path

SHARED_TITLE = "A Paper That Both The Training Sources And The Validation Collections Contain"
WORDS = [
    "graph", "neural", "parsing", "protein", "lattice", "quark", "semantic", "retrieval", "kernel", "tumor",
    "cardiac", "string", "gauge", "topic", "ranking", "syntax", "enzyme", "vaccine", "spin", "boson",
]  # fmt: skip


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _title(rng: random.Random, tag: str, i: int) -> str:
    return f"{tag} study {i} of {_text(rng, 4)}"


def _gz_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _graph(rng: random.Random, ids: list[str], n_citing: int, per: int) -> list[tuple[str, str]]:
    edges = []
    for citing in ids[:n_citing]:
        for cited in rng.sample(ids[n_citing:], per):
            edges.append((citing, cited))
    return edges


def make_data_tree(root: Path) -> Path:
    rng = random.Random(7)
    # ACL Anthology + AAN graph: 300 papers, the first 150 cite 7 of the others each
    acl_ids = [f"P{i:02d}-{1000 + i}" for i in range(300)]
    acl = [
        {
            "paper_id": pid,
            "title": _title(rng, "acl", i),
            "abstract": _text(rng, 30) if i % 2 else None,
            "year": 2000 + i % 15,
        }
        for i, pid in enumerate(acl_ids)
    ]
    acl.append({"paper_id": "W99-0001", "title": SHARED_TITLE, "abstract": _text(rng, 30), "year": 2020})
    _gz_jsonl(root / "acl" / "anthology-papers.jsonl.gz", acl)
    edges = _graph(rng, acl_ids, 150, 7)
    (root / "acl" / "aan-citations-2013.txt").write_text("".join(f"{a} , {b}\n" for a, b in edges))
    # Paperscape: 300 physics papers (titles only)
    ps_ids = [f"hep-th/91{i:05d}" for i in range(300)]
    cats = ["hep-th", "hep-ph", "cond-mat"]
    _gz_jsonl(
        root / "paperscape" / "papers-1991-1996.jsonl.gz",
        [
            {"paper_id": pid, "title": _title(rng, "physics", i), "categories": [cats[i % 3]], "year": 1991}
            for i, pid in enumerate(ps_ids)
        ],
    )
    (root / "paperscape" / "citations-1991-1996.txt").write_text(
        "".join(f"{a},{b}\n" for a, b in _graph(rng, ps_ids, 150, 7))
    )
    # arXiv 2025-26: 3 categories x 20 papers
    _gz_jsonl(
        root / "arxiv" / "papers-2025-2026.jsonl.gz",
        [
            {"id": f"2501.{i:05d}", "title": _title(rng, "arxiv", i), "abstract": _text(rng, 25),
             "categories": [["cs.CL", "cs.LG", "cs.CV"][i % 3], "stat.ML"], "date": "2025-01-01"}
            for i in range(60)
        ],
    )  # fmt: skip
    # SciTLDR splits
    for split, n in (("train", 20), ("dev", 5), ("test", 30)):
        _jsonl(
            root / "scitldr" / f"{split}.jsonl",
            [
                {"paper_id": f"tldr-{split}-{i}", "title": _title(rng, f"tldr {split}", i),
                 "source": [_text(rng, 12), _text(rng, 12)], "target": [_text(rng, 8)]}
                for i in range(n)
            ],
        )  # fmt: skip
    # SciRepEval samples
    sample = root / "scirepeval-sample"
    sample.mkdir(parents=True)
    fields = ["Biology", "Physics", "Medicine"]
    fos = [
        {"corpus_id": 1000 + i, "title": _title(rng, "fos", i), "abstract": _text(rng, 20),
         "labels_text": [fields[i % 3]] + ([fields[(i + 1) % 3]] if i % 4 == 0 else [])}
        for i in range(30)
    ]  # fmt: skip
    (sample / "fos_small.json").write_text(json.dumps(fos))
    mesh = [
        {"corpus_id": 2000 + i, "title": _title(rng, "mesh", i), "abstract": _text(rng, 20), "descriptor": f"D{i % 3}"}
        for i in range(30)
    ]
    (sample / "mesh_small.json").write_text(json.dumps(mesh))

    def paper(cid: int, tag: str, title: str | None = None) -> dict:
        return {"corpus_id": cid, "title": title or _title(rng, tag, cid), "abstract": _text(rng, 20)}

    triplets = [
        {"query": paper(3000 + i, "q"), "pos": paper(3100 + i, "p"), "neg": paper(3200 + i, "n")} for i in range(12)
    ]
    triplets[0]["pos"] = paper(3999, "p", SHARED_TITLE)
    (sample / "specter_small.json").write_text(json.dumps(triplets))
    search = []
    for i in range(8):
        cands = [dict(paper(4000 + 10 * i + j, "cand"), score=int(j == 0), venue="V", year=2010) for j in range(5)]
        search.append({"query": _text(rng, 3), "candidates": cands})
    search[0]["candidates"][1]["title"] = SHARED_TITLE
    _jsonl(sample / "search_small.jsonl", search)
    # ICLR 2021
    iclr = root / "iclr2021"
    iclr.mkdir()
    with open(iclr / "paperlist.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["paper_id", "title", "link", "keywords", "abstract"])
        for i in range(40):
            writer.writerow([f"iclr{i}", SHARED_TITLE if i == 0 else _title(rng, "iclr", i), "", "", _text(rng, 25)])
    with open(iclr / "ratings.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["paper_id", "0", "1", "2", "decision"])
        for i in range(40):
            writer.writerow([f"iclr{i}", rng.randint(1, 9), rng.randint(1, 9), "", "Reject"])
    # OHSUMED
    _gz_jsonl(
        root / "ohsumed" / "ohsumed-23.jsonl.gz",
        [
            {"doc_id": f"oh{i}", "title": SHARED_TITLE if i == 0 else _title(rng, "ohsumed", i),
             "abstract": _text(rng, 20), "label": f"C0{i % 3 + 1}", "split": "train" if i % 2 else "test"}
            for i in range(60)
        ]
        # papers that OHSUMED holds twice (the same title in the other split, another id)
        + [
            {"doc_id": f"oh-twin{i}", "title": _title(random.Random(i), "ohsumed-twin", i),
             "abstract": _text(rng, 20), "label": f"C0{i % 3 + 1}", "split": "train" if i % 2 else "test"}
            for i in range(20)
        ]
        + [
            {"doc_id": f"oh-twin{i}b", "title": _title(random.Random(i), "ohsumed-twin", i),
             "abstract": _text(rng, 20), "label": f"C0{i % 3 + 1}", "split": "test" if i % 2 else "train"}
            for i in range(20)
        ],
    )  # fmt: skip
    # S2ORC sample
    _jsonl(
        root / "s2orc-sample" / "metadata.jsonl",
        [
            {"paper_id": f"s2-{i}", "title": SHARED_TITLE if i == 0 else _title(rng, "s2orc", i),
             "abstract": _text(rng, 20) if i % 2 else None, "year": 1990 + i % 30,
             "mag_field_of_study": [fields[i % 3]], "inbound_citations": [f"x{j}" for j in range(i % 7)]}
            for i in range(80)
        ],
    )  # fmt: skip
    # keyphrase collections: Inspec (title line + abstract), KDD and WWW (one line)
    for folder, n in (("Inspec", 40), ("kdd", 25), ("www", 25)):
        archive = root / "keyphrase" / f"{folder}.zip"
        archive.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive, "w") as zf:
            for i in range(n):
                topic = [WORDS[(i // 2) % 5], WORDS[5 + (i // 2) % 4]]
                title = SHARED_TITLE if (folder == "Inspec" and i == 0) else _title(rng, folder, i)
                abstract = f"{topic[0]} {topic[1]} {_text(rng, 30)}"
                body = f"{title}\n\t{abstract}" if folder == "Inspec" else f"{title} {abstract}"
                zf.writestr(f"{folder}/docsutf8/{i}.txt", body)
                # pairs of papers share two specific keyphrases; "generic term" is in every paper
                keys = [f"{topic[0]} methods {i // 2}", f"{topic[1]} analysis {i // 2}", "generic term"]
                zf.writestr(f"{folder}/keys/{i}.key", "\n".join(keys) + "\n")
    return root
