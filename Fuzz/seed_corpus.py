"""Writes Fuzz/corpus/ from protocol/vectors/frames.json: every valid and invalid vector, one file each."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "protocol", "vectors", "frames.json"), encoding="utf-8") as f:
    vectors = json.load(f)
os.makedirs(os.path.join(HERE, "corpus"), exist_ok=True)
for kind in ("valid", "invalid"):
    for v in vectors[kind]:
        with open(os.path.join(HERE, "corpus", f"{kind}-{v['name']}"), "wb") as out:
            out.write(bytes.fromhex(v["hex"]))
print(f"{len(vectors['valid']) + len(vectors['invalid'])} seeds in Fuzz/corpus/")
