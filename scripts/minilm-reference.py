#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 from sentence-transformers, to check exspin's candle
encoder against (tests/embedding.rs, `real_minilm_matches_sentence_transformers`).

Needs sentence-transformers (and torch) in a virtualenv outside the repo; not run by CI:
    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python scripts/minilm-reference.py .cache/exspin/minilm > /tmp/minilm-ref.json
    EXSPIN_MINILM=.cache/exspin/minilm EXSPIN_MINILM_REFERENCE=/tmp/minilm-ref.json \
        cargo test --release -p exspin --test tests embedding::
"""
import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "How many singers do we have?",
    "singer: singer id, name, country, song name, song release year, age, is male",
    "concert_singer stadium capacity",
    "Show the name and the release year of the song by the youngest singer.",
    "What are the names of the stadiums without any concerts?",
    "",
    "Ünïcödé: café — naïve façade, 東京 and numbers 12,345.67!",
    "word " * 300,  # longer than max_seq_length (256): both sides truncate
]

model = SentenceTransformer(sys.argv[1] if len(sys.argv) > 1 else ".cache/exspin/minilm", device="cpu")
vectors = model.encode(SENTENCES, normalize_embeddings=True)
json.dump([{"text": t, "embedding": [float(x) for x in v]} for t, v in zip(SENTENCES, vectors)], sys.stdout)
