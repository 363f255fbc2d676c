"""``python -m recbook export``: a serving bundle from a retriever run and an optional re-ranker run."""

from __future__ import annotations

from recbook.cli.flags import check_out_folder
from recbook.usage import UsageError


def cmd_export(args) -> dict:
    out = check_out_folder(args.out)  # a file, or a folder under a file: exit 2 before anything is loaded
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {str(out)!r} already exists; a bundle version is written once — choose a new folder (e.g. bundles/v2)")
    from recbook.serve.bundle import SIGNATURE, BundleError, read_manifest
    from recbook.serve.export import export_bundle

    try:
        folder = export_bundle(args.retriever, out, reranker_run=args.reranker, version=args.version, parent=args.parent,
                               request_variant=args.request_variant)
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    manifest = read_manifest(folder)
    return {"bundle": str(folder), "version": manifest["version"], "parent": manifest["parent"], "files": len(manifest["files"]),
            "reranker": manifest["reranker"] is not None, "data": manifest["data"],
            "request_path": manifest["retriever"].get("request_path"), "signed": (folder / SIGNATURE).is_file()}


