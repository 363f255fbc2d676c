"""The serving bundle (issue 12): written atomically, every file's sha256 in the manifest, verified before loading,
only data formats read (the tiny bundles come from tests/serve_helpers.py)."""

import json
import os

import numpy as np
import pytest

from serve_helpers import USER_OFFSET, copy_of, serve_bundles, tiny_data, tiny_retriever


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, tiny_backbone):
    return serve_bundles(tmp_path_factory.mktemp("bundles"), tiny_backbone)



def test_manifest_lists_every_file_with_its_sha256(bundles):
    from recbook.serve.bundle import FORMAT_NAME, sha256_of

    folder = bundles["v2"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == FORMAT_NAME and manifest["version"] == "v2" and manifest["parent"] == "v1"
    assert manifest["data"]["n_items"] == 40 and manifest["data"]["item_ids_sha256"] and manifest["created"].endswith("+00:00")
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert sorted(manifest["files"]) == on_disk
    assert {"items.json", "histories.safetensors", "item_vectors.safetensors", "retriever/model.safetensors", "retriever/sequential.json",
            "reranker/model.int8.onnx", "reranker/reranker.json"} <= set(on_disk)
    assert any(f.startswith("reranker/tokenizer/") for f in on_disk)
    assert all(f.endswith((".json", ".safetensors", ".onnx", ".txt")) for f in on_disk)  # no pickle anywhere
    for rel, entry in manifest["files"].items():
        assert sha256_of(folder / rel) == entry["sha256"], rel
    assert json.loads((bundles["plain"] / "manifest.json").read_text())["reranker"] is None


def test_loaded_bundle_answers_like_the_model(bundles):
    from recbook.serve.bundle import UnknownItems, load_bundle

    b = load_bundle(bundles["v1"])
    assert b.version == "v1" and b.n_items == 40 and all(u >= USER_OFFSET for u in b.histories)
    user, history = next(iter(b.histories.items()))
    full = b.retriever.score_all([history + 1])[0]  # the model's own scores of every item
    scores, rows = b.retrieve(history, 10, exclude_seen=True)
    expected = np.argsort(-np.where(np.isin(np.arange(40), history), -np.inf, full), kind="stable")[:10]
    assert set(rows.tolist()) == set(expected.tolist()) and not set(rows.tolist()) & set(history.tolist())
    np.testing.assert_allclose(scores, full[rows], rtol=1e-5, atol=1e-6)
    one, two = b.rerank_many([(history, rows[:5]), (history[:2], rows[:3])])
    assert one.shape == (5,) and two.shape == (3,) and np.isfinite(one).all()
    # dynamic int8 quantizes activations with one scale per batch, so merging requests moves scores by about 1e-3
    np.testing.assert_allclose(b.rerank_many([(history, rows[:5])])[0], one, atol=5e-3)
    assert b.titles[rows[0]]
    text = b.history_text(history, int(history[-1]))
    assert b.entries[history[-1]] not in text.split(" ; ")  # the candidate never appears in its own history
    score, drops = b.explain(history, int(rows[0]))
    assert score == pytest.approx(float(full[rows[0]]), rel=1e-5) and drops.shape == (len(history),)
    shorter = b.retriever.score_all([np.delete(history, 0) + 1])[0][rows[0]]
    assert drops[0] == pytest.approx(score - shorter, abs=1e-5)
    with pytest.raises(UnknownItems, match=r"history\[1\]=999999"):
        b.rows_of([int(b.item_ids[0]), 999999], "history")


@pytest.mark.parametrize("damage", ["tampered", "missing", "pickle", "unlisted", "symlink", "manifest"])
def test_damaged_bundle_is_refused_naming_the_file(bundles, tmp_path, damage):
    from recbook.serve.bundle import BundleError, load_bundle, verify_bundle

    folder = copy_of(bundles["v1"], tmp_path)
    if damage == "tampered":
        path = folder / "retriever" / "model.safetensors"
        data = bytearray(path.read_bytes())
        data[-1] ^= 1  # one bit of one weight: same size, different sha256
        path.write_bytes(bytes(data))
        match = r"retriever/model\.safetensors does not match its sha256"
    elif damage == "missing":
        (folder / "item_vectors.safetensors").unlink()
        match = r"item_vectors\.safetensors is listed .* but missing"
    elif damage == "pickle":
        (folder / "retriever" / "extra.pt").write_bytes(b"\x80\x04K\x01.")
        match = r"retriever/extra\.pt is in an executable format"
    elif damage == "unlisted":
        (folder / "notes.json").write_text("{}")
        match = r"notes\.json is not listed in manifest\.json"
    elif damage == "symlink":
        (folder / "link.json").symlink_to(folder / "items.json")
        match = r"link\.json is a symbolic link"
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"]["../outside.json"] = {"sha256": "0" * 64}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        match = r"outside the bundle"
    with pytest.raises(BundleError, match=match):
        verify_bundle(folder)
    with pytest.raises(BundleError, match=match):
        load_bundle(folder)


def test_verification_runs_before_anything_is_loaded(bundles, tmp_path, monkeypatch):
    from recbook.models import sequential
    from recbook.serve.bundle import BundleError, load_bundle

    folder = copy_of(bundles["v1"], tmp_path)
    (folder / "items.json").write_text((folder / "items.json").read_text().replace("]", "] ", 1))
    opened = []
    monkeypatch.setattr(sequential.SequentialRecommender, "load", classmethod(lambda cls, f: opened.append(f)))
    with pytest.raises(BundleError, match="items.json"):
        load_bundle(folder)
    assert opened == []


def test_the_bytes_loaded_are_the_bytes_hashed(bundles, tmp_path, monkeypatch):
    """Issue 22, F7: a file swapped in the bundle after its sha256 was checked is never read — the service loads a
    private copy written from the verified bytes."""
    import json as json_mod

    from recbook.serve import bundle as bundle_mod

    monkeypatch.delenv(bundle_mod.BUNDLE_KEY_ENV, raising=False)

    folder = copy_of(bundles["plain"], tmp_path)
    items = json_mod.loads((folder / "items.json").read_text())
    real_verify = bundle_mod.verify_bundle

    def verify_then_swap(path, *args, **kwargs):
        manifest = real_verify(path, *args, **kwargs)
        swapped = {**items, "titles": ["SWAPPED"] * len(items["titles"])}
        (folder / "items.json").write_text(json_mod.dumps(swapped))  # between the check and the load
        return manifest

    staged = []
    real_mkdtemp = bundle_mod.tempfile.mkdtemp
    monkeypatch.setattr(bundle_mod.tempfile, "mkdtemp", lambda **kw: staged.append(real_mkdtemp(**kw)) or staged[-1])
    monkeypatch.setattr(bundle_mod, "verify_bundle", verify_then_swap)
    loaded = bundle_mod.load_bundle(folder)
    assert loaded.titles == items["titles"] and loaded.folder == folder
    assert len(staged) == 1 and not os.path.exists(staged[0])  # the private copy is removed once everything is in memory


def test_a_signed_bundle_loads_only_with_its_deploy_key(tmp_path, monkeypatch):
    """Issue 22, F7: with RECBOOK_BUNDLE_KEY set the service refuses a bundle that is unsigned, signed with another
    key, or whose manifest changed after signing — even when the manifest's sha256 list is self-consistent."""
    import json as json_mod

    from recbook.serve.bundle import BUNDLE_KEY_ENV, SIGNATURE, BundleError, load_bundle, manifest_signature, verify_bundle
    from recbook.serve.export import write_bundle

    monkeypatch.delenv(BUNDLE_KEY_ENV, raising=False)
    ds, history = tiny_data()
    signed = write_bundle(tmp_path / "signed", tiny_retriever(ds.n_items, 0), ds, history, version="s1", signing_key="deploy-key-1")
    unsigned = write_bundle(tmp_path / "unsigned", tiny_retriever(ds.n_items, 0), ds, history, version="u1")
    assert (signed / SIGNATURE).is_file() and not (unsigned / SIGNATURE).exists()
    raw = (signed / "manifest.json").read_bytes()
    assert (signed / SIGNATURE).read_text().strip() == manifest_signature(raw, "deploy-key-1")
    monkeypatch.setenv(BUNDLE_KEY_ENV, "deploy-key-1")
    assert load_bundle(signed).version == "s1"
    with pytest.raises(BundleError, match="no manifest.sig"):
        verify_bundle(unsigned)
    with pytest.raises(BundleError, match="does not match"):
        verify_bundle(signed, key="another-key")
    # an attacker who can write the folder rewrites a file and its sha256 in the manifest: consistent, but unsigned
    forged = copy_of(signed, tmp_path, "forged")
    manifest = json_mod.loads((forged / "manifest.json").read_text())
    (forged / "items.json").write_text((forged / "items.json").read_text().replace("]", "] ", 1))
    manifest["files"]["items.json"] = {"sha256": bundle_mod_sha(forged / "items.json"), "bytes": (forged / "items.json").stat().st_size}
    (forged / "manifest.json").write_text(json_mod.dumps(manifest, indent=1))
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(forged)
    (signed / SIGNATURE).write_bytes("é".encode() * 32)  # not even ASCII: refused, not a crash
    with pytest.raises(BundleError, match="does not match"):
        verify_bundle(signed)
    monkeypatch.setenv(BUNDLE_KEY_ENV, "")  # a Secret whose value went missing must not switch the check off
    with pytest.raises(BundleError, match="set but empty"):
        verify_bundle(unsigned)
    monkeypatch.delenv(BUNDLE_KEY_ENV)
    assert verify_bundle(forged)["version"] == "s1"  # without a deploy key only the sha256 sums are checked, as before
    assert load_bundle(unsigned).version == "u1"


def bundle_mod_sha(path):
    from recbook.serve.bundle import sha256_of

    return sha256_of(path)


def test_writes_are_atomic_and_versions_never_overwritten(bundles, tmp_path, monkeypatch):
    from recbook.serve import export as bundle_mod

    ds, history = tiny_data()
    with pytest.raises(bundle_mod.BundleError, match="already exists"):
        bundle_mod.write_bundle(bundles["plain"], tiny_retriever(ds.n_items, 0), ds, history)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundle_mod, "_write_reranker", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        bundle_mod.write_bundle(tmp_path / "new", tiny_retriever(ds.n_items, 0), ds, history, reranker=object(), tokenizer=object())
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its temporary folder is left behind


def test_export_from_training_runs_through_the_cli(tmp_path, tiny_profile, tiny_backbone, capsys):
    """``recbook export`` on run folders as ``recbook train`` saves them (written here with tiny models, no training)."""
    from helpers import tiny_cross_encoder_from
    from recbook import cli
    from recbook.models.backbone import load_tokenizer
    from recbook.runs.recipe import Fitted, load_data_source, run_record, save_fitted
    from recbook.serve.bundle import load_bundle

    ds = load_data_source("synthetic", tiny_profile, seed=0)
    model = tiny_retriever(ds.n_items, 0)
    from recbook.models.cross_encoder import CrossEncoderConfig, CrossEncoderRecommender
    from recbook.models.sasrec import SASRec

    seq = SASRec.from_network(model, ds.item_ids)
    save_fitted(Fitted("sasrec", seq, None, 0.0), tmp_path / "seq" / "checkpoint", run_record("synthetic", "sasrec", tiny_profile, 0, ds))
    ce = CrossEncoderRecommender.from_network(tiny_cross_encoder_from(tiny_backbone), load_tokenizer(tiny_backbone), ds,
                                              CrossEncoderConfig.from_profile(tiny_profile))
    save_fitted(Fitted("cross-encoder", ce, None, 0.0), tmp_path / "ce" / "checkpoint", run_record("synthetic", "cross-encoder", tiny_profile, 0, ds))
    capsys.readouterr()
    assert cli.main(["export", "--retriever", str(tmp_path / "seq"), "--reranker", str(tmp_path / "ce"), "--out", str(tmp_path / "b"),
                     "--version", "2026-11-30", "--parent", "2026-11-01"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == "2026-11-30" and shown["parent"] == "2026-11-01" and shown["reranker"] is True
    b = load_bundle(tmp_path / "b")
    assert b.n_items == ds.n_items and b.reranker_config["max_length"] == tiny_profile.max_length
    assert len(b.histories) == ds.n_users
    manifest = b.manifest
    assert manifest["source"]["retriever_model"] == "sasrec" and manifest["data"]["n_items"] == ds.n_items

    # wrong kinds of runs and an existing --out are one-line errors (exit 2)
    for argv, text in ((["--retriever", str(tmp_path / "ce")], "must be sasrec or bert4rec or lmrec"),
                       (["--retriever", str(tmp_path / "seq"), "--reranker", str(tmp_path / "seq")], "must be a cross-encoder"),
                       (["--retriever", str(tmp_path / "seq")], "already exists")):
        out = str(tmp_path / "b") if text == "already exists" else str(tmp_path / "other")
        capsys.readouterr()
        assert cli.main(["export", *argv, "--out", out]) == 2
        err = capsys.readouterr().err
        assert text in err and len(err.strip().splitlines()) == 1, err


def test_an_lmrec_run_exports_as_the_retriever_and_the_bundle_scores_like_the_model(tmp_path, tiny_profile, tiny_backbone, capsys,
                                                                                   monkeypatch):
    """lmrec is on the request path: its run exports as a bundle's retriever (a SASRec network whose item table holds the
    fine-tuned text vectors), and the bundle's precomputed item matrix scores a history as the model does."""
    monkeypatch.delenv("RECBOOK_BUNDLE_KEY", raising=False)
    from recbook import cli
    from recbook.models import create
    from recbook.models.base import Histories
    from recbook.runs.recipe import Fitted, prepare_data, run_record, save_fitted
    from recbook.serve.bundle import load_bundle

    ds, split = prepare_data("synthetic", tiny_profile, 0)
    model = create("lmrec", tiny_profile, backbone=str(tiny_backbone), epochs=2, dim=16, layers=1, heads=1, patience=None,
                   lm_steps=2, lm_batch_size=8, refit=False).fit(ds, split)
    save_fitted(Fitted("lmrec", model, None, 0.0), tmp_path / "lm" / "checkpoint", run_record("synthetic", "lmrec", tiny_profile, 0, ds))
    capsys.readouterr()
    assert cli.main(["export", "--retriever", str(tmp_path / "lm"), "--out", str(tmp_path / "b")]) == 0
    b = load_bundle(tmp_path / "b")
    assert b.manifest["source"]["retriever_model"] == "lmrec"
    history = split.train[split.train["user_id"] == split.train["user_id"].iloc[0]]["item_id"].to_numpy()
    want = model.network.score_all(model.indices(Histories.from_items([history])))[0]
    got = b.retriever.score_all([model.indices(Histories.from_items([history]))[0]])[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the same run, served through a student distilled at export (an MLP over the last 4 items, int8, int8 table)
    capsys.readouterr()
    assert cli.main(["export", "--retriever", str(tmp_path / "lm"), "--out", str(tmp_path / "s"),
                     "--request-variant", "mlp-student-int8-last4+table-int8"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["request_path"]["variant"] == "mlp-student-int8-last4+table-int8" and summary["signed"] is False
    s = load_bundle(tmp_path / "s")
    assert s.encoder_info == {"variant": "mlp-student-int8-last4+table-int8", "window": 4, "table_bits": 8}
    assert s.manifest["source"]["request_variant"] == "mlp-student-int8-last4+table-int8"
    vectors = s.user_vectors([b.histories[next(iter(b.histories))]])
    assert vectors.shape == (1, 16) and np.isfinite(vectors).all()
    for bad, text in (("onnx-int3", "unknown encoder"), ("fp32", "runs the encoder in PyTorch")):
        capsys.readouterr()
        assert cli.main(["export", "--retriever", str(tmp_path / "lm"), "--out", str(tmp_path / f"x{bad}"), "--request-variant", bad]) == 2
        err = capsys.readouterr().err
        assert "--request-variant" in err and text in err, err


# ------------------------------------------------------------------ a compressed request path shipped in the bundle
@pytest.mark.parametrize("variant,bits", [("onnx-fp32", 32), ("onnx-int8-last5+table-int8", 8)])
def test_a_bundle_serves_the_request_variant_it_ships(tmp_path, variant, bits):
    """The service answers with the bundle's ONNX user encoder: its fp32 export gives the PyTorch retriever's vectors,
    a compressed one reads its window and its quantized table, and the manifest says which variant is served."""
    from recbook.compress.request import build_variants, quantize_table
    from recbook.compress.request_variants import parse_variant
    from recbook.serve.bundle import load_bundle
    from recbook.serve.export import write_bundle

    ds, history = tiny_data()
    retriever = tiny_retriever(ds.n_items, 0)
    v = build_variants(retriever, [variant], tmp_path / "work")[0]
    _, window, _ = parse_variant(variant)
    spec = {"variant": variant, "onnx": v.encode.path, "window": window, "table_bits": bits}
    plain = load_bundle(write_bundle(tmp_path / "plain", retriever, ds, history, version="plain"))
    shipped = load_bundle(write_bundle(tmp_path / "b", retriever, ds, history, version="b", user_encoder=spec))
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["retriever"]["request_path"] == {"variant": variant, "window": window or 16, "table_bits": bits}
    assert "retriever/user_encoder.onnx" in manifest["files"] and shipped.user_encoder is not None and plain.user_encoder is None
    histories = [np.array([0, 3, 5, 7, 9, 11, 2]), np.array([4]), np.arange(20) % 40]
    if bits == 32:
        np.testing.assert_allclose(shipped.user_vectors(histories), plain.user_vectors(histories), atol=1e-4)
        np.testing.assert_array_equal(shipped.item_vectors, plain.item_vectors)
    else:
        codes, scales = quantize_table(plain.item_vectors, 8)
        np.testing.assert_allclose(shipped.item_vectors, codes * scales, atol=1e-6)
        want = v.encode(*(lambda s: (s, v.full_table[s]))(np.stack([np.r_[np.zeros(5), h + 1][-5:] for h in histories]).astype(np.int64)))
        np.testing.assert_allclose(shipped.user_vectors(histories), want, atol=1e-4)
        assert (tmp_path / "b" / "item_vectors.safetensors").stat().st_size < (tmp_path / "plain" / "item_vectors.safetensors").stat().st_size / 2.5  # 1 byte + a scale per row vs 4 bytes
    scores, rows = shipped.retrieve(histories[0], 5)
    assert len(rows) == 5 and not set(rows.tolist()) & set(histories[0].tolist())


def test_a_request_variant_the_bundle_cannot_serve_is_refused(tmp_path):
    from recbook.models.sequential import SequentialConfig, SequentialRecommender
    from recbook.serve.bundle import BundleError
    from recbook.serve.export import write_bundle

    ds, history = tiny_data()
    cloze = SequentialRecommender(ds.n_items, SequentialConfig(objective="cloze", max_len=16, dim=16, layers=1, heads=2)).eval()
    fake = tmp_path / "e.onnx"
    fake.write_bytes(b"x")
    with pytest.raises(BundleError, match="causal retrievers"):
        write_bundle(tmp_path / "c", cloze, ds, history, user_encoder={"variant": "onnx-fp32", "onnx": fake, "table_bits": 32})
    for bad, match in (({"variant": "x", "onnx": fake}, "table_bits"), ({"variant": "x", "onnx": fake, "table_bits": 2}, "32, 8 or 4"),
                       ({"variant": "x", "onnx": fake, "table_bits": 8, "window": 99}, "window must be")):
        with pytest.raises(BundleError, match=match):
            write_bundle(tmp_path / "d", tiny_retriever(ds.n_items, 0), ds, history, user_encoder=bad)
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())  # nothing half-written
