"""The pages of the documentation written from the code itself, so they cannot go stale: every
op of the registry (``docs/ops.md``) and the JSON Schemas of the report and of the manifest
(``docs/json.md``). ``python -m xlnet.docs_pages`` writes them; the tests hold the committed
pages to what this writes."""

from __future__ import annotations

import json
from pathlib import Path


def ops_page():
    """Every op a spec or manifest can name: inputs, attributes, what it computes, the shapes a
    spec's ranges are read in."""
    from . import ops

    lines = ["# Ops", "", "Every op a spec (`op = \"...\"`) or a manifest can name, from the registry "
             "(`xlnet list --ops` prints the same). Optional inputs are in brackets; an attribute without a "
             "default is marked `?`.", ""]
    for op in sorted(ops.REGISTRY.values(), key=lambda o: o.name):
        if op.trajectory:
            continue
        inputs = ", ".join(op.inputs) + (f" [{', '.join(op.optional)}]" if op.optional else "")
        attrs = ", ".join(f"{k}={'?' if type(v).__name__ == 'Required' else json.dumps(v)}"
                          for k, v in op.attrs.items())
        doc = " ".join((type(op).__doc__ or "").split())
        lines += [f"## `{op.name}`", "", f"Inputs: `{inputs}`" + (f"; attributes: `{attrs}`" if attrs else "") + ".",
                  "", doc, ""]
        shapes = [f"{arg} {op.ranks[arg]}-D" for arg in (*op.inputs, *op.optional) if arg in op.ranks]
        shapes += [f"{' and '.join(group)} of one shape" for group in op.same_shape]
        if shapes:
            lines += ["Shapes: " + "; ".join(shapes) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


def json_page():
    """The report's and the manifest's JSON Schemas, with what each is for."""
    from .manifest.schema import SCHEMA as MANIFEST
    from .report.schema import SCHEMA as REPORT, VERSION

    return "\n".join([
        "# JSON", "",
        f"## The report: `xlnet check --json` (version {VERSION})", "",
        "A list of records, one per book checked (and one per file that could not be checked, with `error` set "
        "and no blocks), all of one shape, each carrying `\"version\"`. A difference is a number, or null when "
        "there is none to give; a block's `infinite` names the differences that are infinite. "
        "`xlnet list --report-schema` prints this schema.", "",
        "```json", json.dumps(REPORT, indent=2), "```", "",
        "## The manifest", "",
        "What a built book carries on its hidden `_xlnet` sheet (and `xlnet annotate` writes from a spec): its "
        "tensors (shape, role, tiles), its ops (inputs, outputs, attributes) and charts. It is untrusted input, "
        "validated on read by this schema before anything is allocated.", "",
        "```json", json.dumps(MANIFEST, indent=2, default=str), "```", ""])


PAGES = {"ops.md": ops_page, "json.md": json_page}


def write(folder):
    """Write the generated pages into ``folder``; return their paths."""
    folder = Path(folder)
    paths = []
    for name, page in PAGES.items():
        path = folder / name
        path.write_text(page())
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(__file__).resolve().parent.parent / "docs"):
        print(f"wrote {written}")
