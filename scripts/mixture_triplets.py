"""Write the citation-triplet tasks of a stage-2 mixture as one stage-1 triplet file (papers inline).

    python scripts/mixture_triplets.py data/mixture-v2 runs/triplets-mix/train.jsonl.gz

Stage 1 then trains on exactly the triplets (ACL + Paperscape, held-out papers excluded) that the
mixture uses for the proximity adapter, so the two recipes see the same citation data.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

TASKS = ("acl_citation_triplets", "paperscape_triplets")


def main(mixture: Path, output: Path) -> None:
    with gzip.open(mixture / "papers.jsonl.gz", "rt", encoding="utf-8") as handle:
        papers = {rec["paper_id"]: rec for rec in map(json.loads, handle)}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    count = 0
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as out:
        for task in TASKS:
            with gzip.open(mixture / f"{task}.jsonl.gz", "rt", encoding="utf-8") as handle:
                for rec in map(json.loads, handle):
                    row = {role: papers[rec[role]] for role in ("query", "pos", "neg")}
                    out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                    count += 1
    tmp.replace(output)
    print(f"wrote {count} triplets to {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
