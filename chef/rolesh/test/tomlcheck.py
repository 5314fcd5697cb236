#!/usr/bin/env python3
"""tomlcheck.py OUTDIR: every TOML file test/render wrote must parse (tomllib,
TOML 1.0) to exactly what OUTDIR/expected.json says, which is the attribute
data it was rendered from. Catches quoting and escaping mistakes and dropped
or invented keys."""
import json
import pathlib
import sys
import tomllib


def main(outdir: str) -> int:
    out = pathlib.Path(outdir)
    expected = json.loads((out / "expected.json").read_text())
    rendered = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.toml"))
    failed = 0
    if sorted(expected) != rendered:
        print(f"tomlcheck: files {rendered} but expected {sorted(expected)}")
        failed += 1
    for rel, want in expected.items():
        try:
            got = tomllib.loads((out / rel).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            print(f"tomlcheck: {out / rel}: {e}")
            failed += 1
            continue
        if got != want:
            print(f"tomlcheck: {out / rel} parses to\n  {json.dumps(got, sort_keys=True)}\nnot\n  {json.dumps(want, sort_keys=True)}")
            failed += 1
    if not failed:
        print(f"tomlcheck: {len(expected)} file(s) parse back to their attributes")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: tomlcheck.py OUTDIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
