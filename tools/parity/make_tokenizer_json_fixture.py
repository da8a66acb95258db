"""Tokenizer folders in the `tokenizer.json` form, and the ids transformers gives for them.

Recent `transformers` (5.x) saves a tokenizer as `tokenizer.json` + `tokenizer_config.json`
only, without the `vocab.json` + `merges.txt` of the published SDXL folders. This script loads
the tiny SDXL's two tokenizers (`tests/fixtures/tiny-sdxl/tokenizer{,_2}`, vocab + merges),
saves them with `save_pretrained(legacy_format=False)`, keeps only `tokenizer.json`,
`tokenizer_config.json` and (when written) `special_tokens_map.json`, and records the input ids
of a few prompts as SDXL pipelines tokenize them (`padding="max_length"`, `truncation=True`,
77 tokens) plus each untruncated length. It checks that the saved folders give the same ids as
the originals before writing anything.

Needs only `transformers` and `tokenizers` (no torch):

    pip install transformers==5.24.0 tokenizers==0.23.3
    python tools/parity/make_tokenizer_json_fixture.py    # from the repo root, ~2 s

Writes `crates/pixelgen-diffusion/tests/fixtures/tokenizer-json/`: `tokenizer/`, `tokenizer_2/`
and `expected.json`.
"""

import json
import shutil
import tempfile
from pathlib import Path

import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates/pixelgen-diffusion/tests/fixtures"
SOURCE = FIXTURES / "tiny-sdxl"
OUT = FIXTURES / "tokenizer-json"
KEEP = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

PROMPTS = {
    "plain": "a red health potion, pixel art",
    "empty": "",
    "long": "pixel art knight with a red cape, " * 12,
    "punctuation": "Hello!!! World?? (32x32) -- it's 'fine', isn't it; yes: no. !! ! 100%",
    "upper": "RED Health POTION, Pixel ART, GOLD Coin",
    "spaces": "  lots   of\t\tspaces \n and   newlines  ",
    "unicode": "cafe\u0301 naïve — 東京の剣 🗡️ Ünïcödé ß",
    "special": "a sword<|endoftext|>and a shield",
}


def encode(tok, prompt):
    ids = tok(prompt, padding="max_length", truncation=True, max_length=77).input_ids
    full = tok(prompt).input_ids  # untruncated, with BOS and EOS
    return ids, len(full)


def main():
    expected = {
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "prompts": PROMPTS,
        "ids": {},
        "untruncated_len": {},
    }
    for folder in ["tokenizer", "tokenizer_2"]:
        original = AutoTokenizer.from_pretrained(SOURCE / folder)
        with tempfile.TemporaryDirectory() as tmp:
            original.save_pretrained(tmp, legacy_format=False)
            out = OUT / folder
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for name in KEEP:
                if (Path(tmp) / name).is_file():
                    shutil.copy(Path(tmp) / name, out / name)
        assert (out / "tokenizer.json").is_file(), "save_pretrained wrote no tokenizer.json"
        assert not (out / "vocab.json").exists() and not (out / "merges.txt").exists()
        reloaded = AutoTokenizer.from_pretrained(out)
        assert reloaded.pad_token == original.pad_token, (reloaded.pad_token, original.pad_token)
        for name, prompt in PROMPTS.items():
            ids, full = encode(original, prompt)
            assert encode(reloaded, prompt) == (ids, full), f"{folder} {name}: forms differ"
            assert len(ids) == 77
            expected["ids"][f"{folder}.{name}"] = ids
            expected["untruncated_len"][f"{folder}.{name}"] = full
        print(folder, sorted(p.name for p in out.iterdir()), "pad", repr(original.pad_token))
    assert expected["untruncated_len"]["tokenizer.long"] > 77, "the long prompt must be truncated"
    # One line per entry keeps the file small and diffable.
    lines = ["{"]
    items = [
        ("versions", json.dumps(expected["versions"])),
        ("prompts", json.dumps(PROMPTS, ensure_ascii=False)),
        ("untruncated_len", json.dumps(expected["untruncated_len"])),
    ]
    lines += [f'  "{k}": {v},' for k, v in items]
    lines.append('  "ids": {')
    ids = list(expected["ids"].items())
    for i, (k, v) in enumerate(ids):
        comma = "," if i + 1 < len(ids) else ""
        lines.append(f'    "{k}": {json.dumps(v)}{comma}')
    lines += ["  }", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == expected
    (OUT / "expected.json").write_text(text, encoding="utf-8")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
