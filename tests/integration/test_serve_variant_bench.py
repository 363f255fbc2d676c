"""Bundles measured through the real service (recbook.serve.variant_bench): each served in its own process, the same
open-loop load, the model's CPU time per request read from the service's own log."""

import json

import numpy as np
import pytest

from serve_helpers import tiny_data, tiny_retriever


def test_model_cpu_ms_reads_answered_requests_after_the_warm_up(tmp_path):
    from recbook.serve.variant_bench import model_cpu_ms

    lines = [json.dumps({"route": "/recommend", "status": 200, "model_cpu_ms": 9.0}), "not json",
             json.dumps({"route": "/recommend", "status": 200, "model_cpu_ms": 1.5}),
             json.dumps({"route": "/recommend", "status": 422}), json.dumps({"route": "/rerank", "status": 200, "model_cpu_ms": 7.0}),
             json.dumps({"route": "/recommend", "status": 200, "model_cpu_ms": 2.5})]
    (tmp_path / "log").write_text("\n".join(lines))
    assert model_cpu_ms(tmp_path / "log", skip_lines=1).tolist() == [1.5, 2.5]
    assert model_cpu_ms(tmp_path / "log", route="/rerank").tolist() == [7.0]


@pytest.mark.slow
def test_service_bench_serves_each_bundle_and_reports_its_cost(tmp_path):
    from recbook.compress.request import build_variants
    from recbook.serve.bundle import load_bundle
    from recbook.serve.export import write_bundle
    from recbook.serve.variant_bench import history_payloads, service_bench

    ds, history = tiny_data()
    retriever = tiny_retriever(ds.n_items, 0)
    v = build_variants(retriever, ["onnx-int8"], tmp_path / "work")[0]
    plain = write_bundle(tmp_path / "plain", retriever, ds, history, version="plain")
    onnx = write_bundle(tmp_path / "onnx", retriever, ds, history, version="onnx",
                        user_encoder={"variant": "onnx-int8", "onnx": v.encode.path, "table_bits": 32})
    payloads = history_payloads(load_bundle(plain), 5, max_items=3)
    assert len(payloads) == 5 and all(1 <= len(p["history"]) <= 3 and p["k"] == 10 for p in payloads)
    records = service_bench({"pytorch": plain, "onnx-int8": onnx}, tmp_path / "svc", rps=8, duration=1.5, rounds=1,
                            baselines=["pytorch"])
    assert [r["bundle"] for r in records] == ["pytorch", "onnx-int8"] and {r["baseline"] for r in records} == {"pytorch"}
    for r in records:
        assert r["errors"] == 0 and r["requests"] >= 3 and r["model_cpu_ms_p50"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
    assert records[0]["speedup"] == 1.0 and np.isfinite(records[1]["speedup"])
    with pytest.raises(ValueError, match="bundles is empty"):
        service_bench({}, tmp_path)
    with pytest.raises(ValueError, match="must name bundles"):
        service_bench({"pytorch": plain}, tmp_path, baselines=["onnx-fp32"])
