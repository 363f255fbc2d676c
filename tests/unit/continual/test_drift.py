"""Drift monitoring (issue 13, item 4): PSI and KL against scipy and by hand, the per-window distributions, model-based
signals, the drift report, the detector against the synthetic ground truth, the drift.json file, the Prometheus gauges
and the service exposing them for a bundle that carries a drift.json."""

import json
import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from recbook.continual.drift import (
    DEFAULT_THRESHOLDS,
    DriftDetector,
    calibrate_thresholds,
    drift_report,
    embedding_drift,
    evaluate_detector,
    genre_mix,
    item_popularity,
    kl_divergence,
    psi,
    score_drift,
    stream_report,
)
from recbook.continual.drift_export import DriftGauges, check_drift_values, drift_gauges, drift_summary, read_drift_json, write_drift_json
from recbook.data import make_drift_stream, temporal_windows

SMALL_STREAM = dict(n_users=80, n_items=60, events_per_window=300)  # for detectors whose answer does not depend on the data


# ------------------------------------------------------------------ PSI and KL
def test_psi_and_kl_by_hand():
    # e = (1/2, 1/2), a = (1/4, 3/4): PSI = (1/4 - 1/2) ln(1/2) + (3/4 - 1/2) ln(3/2) = (ln 2 + ln 1.5) / 4
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx((math.log(2) + math.log(1.5)) / 4, abs=1e-12)
    assert psi([2, 2], [1, 3]) == pytest.approx(psi([0.5, 0.5], [0.25, 0.75]))  # counts or shares alike
    # KL(p || q) = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4)
    assert kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-12)
    assert psi([3, 1, 6], [3, 1, 6]) == 0.0 and kl_divergence([1, 2], [10, 20]) == 0.0


def test_psi_and_kl_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = int(rng.integers(2, 50))
        e, a = rng.dirichlet(np.ones(k)) + 1e-3, rng.dirichlet(np.ones(k)) + 1e-3  # no share below eps: no flooring
        e, a = e / e.sum(), a / a.sum()
        assert kl_divergence(a, e) == pytest.approx(entropy(a, e), rel=1e-10)
        assert psi(e, a) == pytest.approx(entropy(a, e) + entropy(e, a), rel=1e-10)  # PSI is the symmetric KL
        assert psi(e, a) == pytest.approx(psi(a, e), rel=1e-12) and psi(e, a) > 0


def test_zero_shares_are_floored_at_eps_and_renormalised():
    eps = 1e-3
    e, a = np.array([0.0, 5, 5]), np.array([4.0, 3, 3])
    floored = np.maximum(e / e.sum(), eps)
    floored /= floored.sum()
    assert psi(e, a, eps=eps) == pytest.approx(entropy(a / a.sum(), floored) + entropy(floored, a / a.sum()), rel=1e-10)
    assert math.isfinite(psi(e, a)) and psi(e, a, eps=1e-8) > psi(e, a, eps=1e-3)  # a smaller floor punishes the empty category more


@pytest.mark.parametrize(
    "args, match",
    [
        (([1, 2, 3], [1, 2]), "expected and actual have different lengths"),
        (([1, -2, 3], [1, 2, 3]), "expected holds negative counts"),
        (([1, 2, 3], [1, 2, -3]), "actual holds negative counts"),
        (([], []), "expected is empty"),
        (([0, 0], [1, 1]), "expected sums to 0"),
        (([1, np.nan], [1, 1]), "expected holds NaN"),
        (([[1, 2]], [1, 2]), "expected must be one-dimensional"),
        ((["a", "b"], [1, 2]), "expected must be numbers"),
    ],
)
def test_psi_errors_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        psi(*args)


def test_kl_errors_name_the_argument_and_eps_is_checked():
    with pytest.raises(ValueError, match="p and q have different lengths"):
        kl_divergence([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="q holds negative"):
        kl_divergence([1, 2], [1, -2])
    with pytest.raises(ValueError, match="p is empty"):
        kl_divergence([], [1])
    for eps in (0, 1, -1e-3, "x"):
        with pytest.raises(ValueError, match="eps"):
            psi([1, 2], [2, 1], eps=eps)


# ------------------------------------------------------------------ distributions of a window
@pytest.fixture
def catalogue():
    items = pd.DataFrame({"item_id": [1, 2, 3, 4], "genres": ["Comedy", "Comedy|Drama", "", "Horror|Drama|Comedy"]})
    interactions = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 1, 2, 3, 2], "timestamp": [1, 2, 3, 4, 5]})
    return items, interactions


def test_item_popularity_includes_unseen_items_and_refuses_unknown_ones(catalogue):
    items, interactions = catalogue
    pop = item_popularity(interactions, items["item_id"])
    assert pop.index.tolist() == [1, 2, 3, 4] and pop.tolist() == [0.4, 0.4, 0.2, 0.0]  # item 4 (not released yet) is there with 0
    with pytest.raises(ValueError, match=r"not in the catalogue, e\.g\. \[9\]"):
        item_popularity(pd.DataFrame({"item_id": [1, 9]}), items["item_id"])
    with pytest.raises(ValueError, match="interactions is empty"):
        item_popularity(interactions.iloc[:0], items["item_id"])
    with pytest.raises(ValueError, match="item_ids is empty"):
        item_popularity(interactions, [])
    with pytest.raises(ValueError, match="item_ids holds duplicates"):
        item_popularity(interactions, [1, 2, 2, 3])
    with pytest.raises(ValueError, match="item_id column"):
        item_popularity(interactions.drop(columns="item_id"), items["item_id"])


def test_genre_mix_splits_multi_genre_items_equally(catalogue):
    items, interactions = catalogue
    mix = genre_mix(interactions, items)
    # item 1 twice (Comedy 2), item 2 twice (Comedy 1, Drama 1), item 3 once (no genre 1): total 5; Horror 0
    expected = pd.Series({"(no genre)": 0.2, "Comedy": 0.6, "Drama": 0.2, "Horror": 0.0})
    pd.testing.assert_series_equal(mix, expected.rename("share"), check_exact=False)
    one = genre_mix(pd.DataFrame({"item_id": [4]}), items)
    assert one[["Comedy", "Drama", "Horror"]].tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="genres"):
        genre_mix(interactions, items.drop(columns="genres"))
    with pytest.raises(ValueError, match="not in the catalogue"):
        genre_mix(pd.DataFrame({"item_id": [5]}), items)
    with pytest.raises(ValueError, match="interactions is empty"):
        genre_mix(interactions.iloc[:0], items)


# ------------------------------------------------------------------ scores and embeddings
def test_score_drift_on_the_reference_quantile_bins():
    ref = np.arange(10.0)  # bins=2: one edge at the median, 4.5; every new score above it
    assert score_drift(ref, [7.0, 8.0, 100.0], bins=2) == pytest.approx(psi([5, 5], [0, 3]))  # open-ended: 100 counts
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20000), rng.normal(size=20000)
    assert score_drift(a, b) < 0.01  # the same distribution: noise only
    assert score_drift(a, b + 0.5) > 0.2  # half a standard deviation: a "major" shift by the rule of thumb
    assert score_drift(a.reshape(100, 200), b.reshape(200, 100)) == pytest.approx(score_drift(a, b))  # any shape, flattened
    assert math.isfinite(score_drift(np.ones(50), np.r_[np.ones(25), np.zeros(25)]))  # a constant reference still bins
    with pytest.raises(ValueError, match="scores_new is empty"):
        score_drift(a, [])
    with pytest.raises(ValueError, match="scores_ref holds NaN"):
        score_drift([1.0, np.nan], a)
    with pytest.raises(ValueError, match="bins"):
        score_drift(a, b, bins=1)


def test_embedding_drift_sees_mean_and_spread_and_ignores_rotation():
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.2])
    ref, same = rng.normal(size=(3000, 8)) * scales, rng.normal(size=(3000, 8)) * scales
    moved = same + np.r_[2.5, np.zeros(7)]  # half a standard deviation along the first axis
    wider = same * np.r_[1.6, np.ones(7)]
    base = embedding_drift(ref, same)
    assert base < 0.02 and embedding_drift(ref, moved) > 5 * base and embedding_drift(ref, wider) > 5 * base
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))  # a rotation of the embedding space changes nothing
    assert embedding_drift(ref @ q, moved @ q) == pytest.approx(embedding_drift(ref, moved), rel=1e-6)
    with pytest.raises(ValueError, match="different widths"):
        embedding_drift(ref, same[:, :4])
    with pytest.raises(ValueError, match="at least 2 rows"):
        embedding_drift(ref[:1], same)
    with pytest.raises(ValueError, match="emb_new must be 2-dimensional"):
        embedding_drift(ref, same[0])
    with pytest.raises(ValueError, match="no spread"):
        embedding_drift(np.ones((10, 3)), same[:, :3])
    with pytest.raises(ValueError, match="n_components"):
        embedding_drift(ref, same, n_components=0)


# ------------------------------------------------------------------ the report
def test_drift_report_by_hand(catalogue):
    items, _ = catalogue
    inter = pd.DataFrame({"user_id": [1, 2, 1, 2, 3, 3], "item_id": [1, 1, 2, 1, 4, 4], "timestamp": [0, 1, 10, 11, 20, 21]})
    windows = temporal_windows(inter, bounds=[10, 20, 30])
    report = drift_report(windows, items)
    assert report.index.tolist() == [1, 2] and report["interactions"].tolist() == [2, 2]
    assert report["new_items"].tolist() == [1, 1] and report["new_item_share"].tolist() == [0.5, 1.0]
    pops = [item_popularity(windows.window(w), items["item_id"]) for w in range(3)]
    mixes = [genre_mix(windows.window(w), items) for w in range(3)]
    assert report.loc[2, "psi_popularity"] == pytest.approx(psi(pops[1], pops[2]))
    assert report.loc[2, "kl_popularity"] == pytest.approx(kl_divergence(pops[2], pops[1]))  # KL(new ‖ reference)
    assert report.loc[2, "psi_genre_base"] == pytest.approx(psi(mixes[0], mixes[2]))
    assert report.loc[1, "psi_popularity"] == report.loc[1, "psi_popularity_base"]  # window 1's previous window is the base
    assert report.loc[2, "genre_up"] == "Horror"
    with pytest.raises(ValueError, match="TemporalWindows"):
        drift_report(inter, items)
    with pytest.raises(ValueError, match="not in the catalogue"):
        drift_report(windows, items[items["item_id"] != 4])


def test_the_report_sees_the_synthetic_change_in_its_window():
    ds = make_drift_stream(0)
    report = stream_report(ds)
    c = ds.info["drift"]["change_window"]
    for column in ("psi_popularity", "psi_genre", "new_item_share"):
        assert report[column].idxmax() == c, column
    assert report.loc[c, "genre_up"] == ds.info["drift"]["trending_genre"]
    assert report.loc[c + 1:, "psi_popularity_base"].min() > report.loc[:c - 1, "psi_popularity_base"].max()  # it stays moved
    with pytest.raises(ValueError, match="info\\['drift'\\]"):
        stream_report(type(ds)(ds.name, ds.interactions, ds.items, ds.users, {}))


# ------------------------------------------------------------------ the detector
def test_detector_rule_and_its_errors():
    det = DriftDetector({"a": 1.0, "b": 2.0}, min_signals=1)
    assert det.over({"a": 1.5, "b": 2.0}) == ["a"]  # strictly above
    assert det.decide({"a": 1.5, "b": 0}) and not det.decide({"a": 1.0, "b": 2.0})
    both = DriftDetector({"a": 1.0, "b": 2.0})  # the default: two signals must agree
    assert both.min_signals == 2 and not both.decide({"a": 1.5, "b": 0}) and both.decide({"a": 1.5, "b": 2.5})
    assert DriftDetector({"a": 1.0}).min_signals == 1  # one signal watched: one is enough
    report = pd.DataFrame({"a": [0.0, 3.0], "b": [5.0, 3.0]}, index=[1, 2])
    applied = det.apply(report)
    assert applied["update_due"].tolist() == [True, True] and applied["signals_over"].tolist() == ["b", "a,b"]
    assert both.apply(report)["update_due"].tolist() == [False, True]
    with pytest.raises(ValueError, match=r"lack signal\(s\) \['b'\]"):
        det.decide({"a": 0.0})
    for bad in ({}, {"a": float("nan")}, {"a": "high"}, {"a": True}):
        with pytest.raises(ValueError, match="thresholds"):
            DriftDetector(bad)
    with pytest.raises(ValueError, match="min_signals"):
        DriftDetector({"a": 1.0}, min_signals=2)
    assert DriftDetector().thresholds == DEFAULT_THRESHOLDS and set(DEFAULT_THRESHOLDS) == {"psi_popularity", "psi_genre", "new_item_share"}


def test_calibration_is_a_quantile_times_a_margin():
    reports = [pd.DataFrame({"s": np.arange(0.0, 50.0)}), pd.DataFrame({"s": np.arange(50.0, 101.0)})]  # 0 … 100
    assert DriftDetector.calibrate(reports, quantile=0.9, margin=2.0, signals=("s",)).thresholds == {"s": 180.0}
    with pytest.raises(ValueError, match="lack signal"):
        DriftDetector.calibrate(reports, signals=("t",))
    with pytest.raises(ValueError, match="reports is empty"):
        DriftDetector.calibrate([])
    with pytest.raises(ValueError, match="quantile"):
        DriftDetector.calibrate(reports, quantile=0, signals=("s",))
    small = calibrate_thresholds(seeds=[7], quantile=1.0, margin=1.0, **SMALL_STREAM)
    report = stream_report(make_drift_stream(7, change_window=None, **SMALL_STREAM))
    assert small == {s: round(float(report[s].max()), 4) for s in ("psi_popularity", "psi_genre", "new_item_share")}


def test_default_detector_finds_the_change_and_stays_quiet_on_stationary_streams():
    result = evaluate_detector(DriftDetector(), seeds=[0, 1])
    assert result["seeds"] == 2 and result["change_window"] == 3
    assert result["detection_rate"] == 1.0 and result["mean_delay"] == 0.0
    assert result["false_alarms_per_window"] == 0.0 and result["stationary_false_alarm_rate"] == 0.0
    assert result["stationary_streams_with_alarm"] == 0.0
    per_seed = result["per_seed"]
    assert per_seed["seed"].tolist() == [0, 1] and per_seed["first_alarm"].tolist() == [3, 3] and per_seed["stationary_windows"].tolist() == [5, 5]


def test_evaluation_counts_alarms_for_detectors_that_never_or_always_fire():
    never = evaluate_detector(DriftDetector({"psi_popularity": 1e9}), seeds=[0], change_window=2, **SMALL_STREAM)
    assert never["detection_rate"] == 0.0 and math.isnan(never["mean_delay"]) and never["false_alarms_per_window"] == 0.0
    always = evaluate_detector(DriftDetector({"psi_popularity": -1.0}), seeds=[0, 1], change_window=2, **SMALL_STREAM)
    assert always["detection_rate"] == 1.0 and always["mean_delay"] == 0.0
    assert always["false_alarms_per_window"] == 1.0 and always["stationary_false_alarm_rate"] == 1.0
    with pytest.raises(ValueError, match="change_window"):
        evaluate_detector(DriftDetector(), seeds=[0], change_window=None)
    with pytest.raises(ValueError, match="seeds is empty"):
        evaluate_detector(DriftDetector(), seeds=[])
    with pytest.raises(ValueError, match="detector"):
        evaluate_detector({"psi_popularity": 1.0}, seeds=[0])


@pytest.mark.slow
def test_default_thresholds_are_what_calibration_gives():
    """The defaults come from the stationary streams of seeds 100–139 (about 30 s), never from the evaluation seeds."""
    assert calibrate_thresholds() == DEFAULT_THRESHOLDS


# ------------------------------------------------------------------ drift.json and the gauges
def test_drift_summary_and_drift_json_round_trip(tmp_path):
    row = pd.Series({"psi_popularity": 2.2, "psi_genre": 0.5, "new_item_share": 0.4, "kl_genre": 0.3})
    values = drift_summary(row)
    assert values == {"item_popularity": 2.2, "genre_mix": 0.5, "new_item_share": 0.4, "update_due": 1}
    assert drift_summary(row, DriftDetector({"psi_popularity": 5.0}))["update_due"] == 0
    path = write_drift_json(tmp_path, values | {"score": 0.05})
    assert path.name == "drift.json" and read_drift_json(tmp_path) == values | {"score": 0.05}
    assert read_drift_json(tmp_path / "nowhere") is None
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        read_drift_json(tmp_path)
    path.write_text(json.dumps({"item_popularity": 1.0}))
    with pytest.raises(ValueError, match="lacks 'update_due'"):
        read_drift_json(tmp_path)
    for bad, match in [({"update_due": 2}, "0 or 1"), ({"update_due": 1, "popularity": 1.0}, "unknown signal 'popularity'"),
                       ({"update_due": 1, "genre_mix": -0.1}, r"\['genre_mix'\] must be a finite number >= 0"),
                       ({"update_due": 1, "new_item_share": 1.5}, "a share"), ({"update_due": True}, "update_due"), ([1, 2], "flat dict")]:
        with pytest.raises(ValueError, match=match):
            check_drift_values(bad)


def _samples(registry):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(registry).decode()
    return text, {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_gauges_are_readable_and_follow_the_values():
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    gauges = drift_gauges({"item_popularity": 2.2, "genre_mix": 0.5, "new_item_share": 0.4, "update_due": 1}, registry)
    text, samples = _samples(registry)
    assert 'recbook_drift_psi{signal="item_popularity"} 2.2' in text and "recbook_update_due 1.0" in text
    assert samples[("recbook_drift_psi", (("signal", "genre_mix"),))] == 0.5 and samples[("recbook_drift_new_item_share", ())] == 0.4
    gauges.set({"genre_mix": 0.01, "update_due": 0})  # a new bundle's values replace the old ones entirely
    _, samples = _samples(registry)
    assert samples == {("recbook_drift_psi", (("signal", "genre_mix"),)): 0.01, ("recbook_update_due", ()): 0.0}
    gauges.set(None)
    text, samples = _samples(registry)
    assert samples == {} and "recbook_" not in text
    gauges.set({"update_due": 1})  # registers again after a clear
    assert _samples(registry)[1] == {("recbook_update_due", ()): 1.0}
    with pytest.raises(ValueError, match="unknown signal"):
        DriftGauges(registry).set({"update_due": 1, "psi": 1.0})


def test_gauges_pass_promtool_lint():
    prometheus_client = pytest.importorskip("prometheus_client")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH")
    registry = prometheus_client.CollectorRegistry()
    drift_gauges({"item_popularity": 2.2, "genre_mix": 0.5, "score": 0.1, "embedding": 0.2, "new_item_share": 0.4, "update_due": 1}, registry)
    proc = subprocess.run([promtool, "check", "metrics"], input=prometheus_client.generate_latest(registry).decode(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ the service
def _bundle_with_drift(src, dst, values: dict | None = None, text: str | None = None):
    """A copy of bundle ``src`` with a drift.json (``values``, or raw ``text``), listed in its manifest as an export would list it."""
    from recbook.serve.bundle import sha256_of

    shutil.copytree(src, dst)
    path = dst / "drift.json"
    if values is not None:
        write_drift_json(dst, values)
    else:
        path.write_text(text)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"]["drift.json"] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dst


def test_service_exposes_a_bundles_drift_json_and_follows_hot_swaps(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("prometheus_client")
    from recbook.serve.app import ServeSettings, Service
    from recbook.serve.bundle import BundleError, verify_bundle
    from recbook.serve.export import write_bundle
    from serve_helpers import tiny_data, tiny_retriever

    ds, history = tiny_data()
    plain = write_bundle(tmp_path / "plain", tiny_retriever(ds.n_items, 0), ds, history, version="plain")
    flagged = _bundle_with_drift(plain, tmp_path / "flagged", {"item_popularity": 2.2, "genre_mix": 0.5, "new_item_share": 0.4, "update_due": 1})
    calm = _bundle_with_drift(plain, tmp_path / "calm", {"item_popularity": 0.3, "update_due": 0})
    settings = ServeSettings(api_keys=("client-key-0123456789abcdef",), log_salt="test-salt", ort_threads=1, torch_threads=None)
    service = Service(plain, settings)

    service.swap(service.load(plain))  # no drift.json: no drift gauges
    text, samples = _samples(service.metrics.registry)
    assert "recbook_drift" not in text and "recbook_update_due" not in text and samples[("recbook_ready", ())] == 1.0
    service.swap(service.load(flagged))
    text, samples = _samples(service.metrics.registry)
    assert samples[("recbook_update_due", ())] == 1.0 and samples[("recbook_drift_psi", (("signal", "item_popularity"),))] == 2.2
    assert samples[("recbook_drift_new_item_share", ())] == 0.4
    service.swap(service.load(calm))
    _, samples = _samples(service.metrics.registry)
    assert samples[("recbook_update_due", ())] == 0.0 and ("recbook_drift_new_item_share", ()) not in samples
    assert [k for k in samples if k[0] == "recbook_drift_psi"] == [("recbook_drift_psi", (("signal", "item_popularity"),))]
    service.swap(service.load(plain))
    assert "recbook_update_due" not in _samples(service.metrics.registry)[0]

    # a drift.json dropped into a bundle after export is refused like any unlisted file; a malformed listed one fails the load
    late = shutil.copytree(plain, tmp_path / "late")
    write_drift_json(late, {"update_due": 1})
    with pytest.raises(BundleError, match="drift.json is not listed"):
        verify_bundle(late)
    broken = _bundle_with_drift(plain, tmp_path / "broken", text=json.dumps({"update_due": 7}))
    with pytest.raises(ValueError, match="update_due"):
        service.load(broken)
    assert service.bundle.version == "plain" and "recbook_update_due" not in _samples(service.metrics.registry)[0]  # nothing swapped
