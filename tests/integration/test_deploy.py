"""deploy/: the HPA's arithmetic (recbook.serve.scaling), the Prometheus alerting rules (promtool) and the Kubernetes
manifests (kubernetes-validate against the schemas of a real Kubernetes version)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from recbook.serve.scaling import desired_replicas, explain_replicas

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"  # a recent release that kubernetes-validate ships schemas for


# --- the HPA rule -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "current, metric, target, expected",
    [
        (1, 200, 100, 2),  # the Kubernetes docs: 200m against a 100m target doubles the replicas ...
        (4, 200, 100, 8),
        (4, 50, 100, 2),  # ... and 50m halves them
        (1, 305, 50, 7),  # the HPA walkthrough (php-apache): 305 % CPU against a 50 % target → 7 replicas
        (2, 90, 60, 3),  # ceil(2 × 1.5) = 3
        (3, 90, 60, 5),  # ceil(4.5) = 5: always rounds up
        (5, 70, 50, 7),  # 5 × 1.4 is 7.000000000000001 in floating point: still 7
        (4, 65, 60, 4),  # ratio 1.083, within the 0.1 tolerance: no change
        (4, 54, 60, 4),  # ratio 0.9, on the tolerance's edge: no change
        (4, 66.6, 60, 5),  # ratio 1.11, just outside the tolerance: ceil(4.44) = 5
        (10, 53, 60, 9),  # ratio 0.883 → ceil(8.83) = 9
        (3, 0, 60, 1),  # idle: ceil(0) = 0, raised to min_replicas
    ],
)
def test_desired_replicas_hand_computed(current, metric, target, expected):
    assert desired_replicas(current, metric, target) == expected


def test_desired_replicas_bounds_tolerance_and_errors():
    assert desired_replicas(10, 10, 60, min_replicas=3) == 3  # ceil(1.67) = 2 → min 3
    assert desired_replicas(4, 300, 50, max_replicas=10) == 10  # 24 → max 10
    assert desired_replicas(1, 120, 100, tolerance=0.1) == 2  # 1.2 is outside ±0.1
    assert desired_replicas(1, 120, 100, tolerance=0.25) == 1  # ... but inside ±0.25
    assert desired_replicas(12, 60, 60, max_replicas=10) == 10  # in tolerance, still clamped
    assert desired_replicas(0, 500, 60) == 0  # scaled to zero by hand: the HPA leaves it
    for bad in [dict(current=-1), dict(target=0), dict(metric=-5), dict(tolerance=1.5), dict(min_replicas=0), dict(min_replicas=5, max_replicas=2)]:
        kwargs = dict(current=2, metric=90, target=60) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            desired_replicas(**kwargs)


def test_explain_replicas_shows_the_arithmetic():
    assert explain_replicas(2, 90, 60, max_replicas=10) == "ceil(2 × 90 / 60) = ceil(3.000) = 3 → 3 within [1, 10]"
    assert "within 1 ± 0.1" in explain_replicas(4, 65, 60)


def test_hpa_manifest_numbers_with_the_rule():
    hpa = yaml.safe_load((K8S / "hpa.yaml").read_text())
    spec = hpa["spec"]
    target = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
    lo, hi = spec["minReplicas"], spec["maxReplicas"]
    # two pods at 150 % of their CPU request each (a load step) → ceil(2 × 150 / 60) = 5
    assert desired_replicas(2, 150, target, min_replicas=lo, max_replicas=hi) == 5
    # a huge step is capped at maxReplicas; idle returns to minReplicas
    assert desired_replicas(5, 1000, target, min_replicas=lo, max_replicas=hi) == hi
    assert desired_replicas(5, 1, target, min_replicas=lo, max_replicas=hi) == lo


# --- Prometheus rules ---------------------------------------------------------------------------------------------


def _promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not on PATH (Debian/Ubuntu: apt-get install prometheus)")
    return path


def _run(*args):
    proc = subprocess.run(args, cwd=PROM, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_alert_rules_pass_promtool_check():
    out = _run(_promtool(), "check", "rules", "alerts.yml")
    assert "SUCCESS: 13 rules found" in out  # 5 recording rules + 7 alerts


def test_alert_rules_pass_their_promtool_unit_tests():
    assert "SUCCESS" in _run(_promtool(), "test", "rules", "alerts_test.yml")


def test_prometheus_config_is_valid():
    _run(_promtool(), "check", "config", "prometheus.yml")


def test_alert_rules_cover_latency_errors_and_readiness():
    every = [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    rules = {r["alert"]: r for r in every if "alert" in r}
    recorded = {r["record"]: r["expr"] for r in every if "record" in r}
    assert set(rules) == {"RecbookHighP99Latency", "RecbookErrorBudgetBurnFast", "RecbookErrorBudgetBurnSlow", "RecbookReloadFailed",
                          "RecbookNotReady", "RecbookDown", "RecbookDriftUpdateDue", "RecbookRateLimitStoreFailing"}
    p99 = rules["RecbookHighP99Latency"]["expr"]
    assert "histogram_quantile(0.99" in p99 and "_bucket" in p99 and 'status_class="2xx"' in p99 and ">= 100" in p99  # 2xx only, guarded
    for name, expr in recorded.items():  # user-facing routes only; 4xx neither errors nor requests
        assert 'route=~"/recommend|/rerank|/explain"' in expr and "livez" not in expr and "readyz" not in expr, name
        assert 'status!~"4.."' in expr, name
    for alert in ("RecbookErrorBudgetBurnFast", "RecbookErrorBudgetBurnSlow"):  # two windows and a traffic guard each
        expr = rules[alert]["expr"]
        assert expr.count("recbook:model_errors:ratio_rate") == 2 and ">= 20" in expr, alert
    for rule in rules.values():
        assert rule["for"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
    tested = {t["alertname"] for case in yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"] for t in case["alert_rule_test"]}
    assert tested == set(rules)  # every alert has a unit test


def _service_metrics():
    """A fresh ``recbook.serve.service.Metrics`` (its own registry), or a skip when the serve extra is missing."""
    app_module = _app_module()
    if app_module is None:
        pytest.skip("recbook.serve.app does not import (the serve extra is missing)")
    from recbook.serve.service import Metrics

    return Metrics()


def _exposed_series():
    """``{series name: label names}`` that the service's /metrics exposes once each metric has one observation."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    metrics = _service_metrics()
    metrics.requests.labels(route="/recommend", status="500").inc()
    metrics.latency.labels(route="/recommend", status_class="2xx").observe(0.3)
    metrics.reloads.labels(outcome="failed").inc()
    metrics.ready.set(0)
    metrics.drift.set({"item_popularity": 2.2, "new_item_share": 0.4, "update_due": 1})  # as from a bundle's drift.json
    import numpy as np

    from recbook.serve.live_drift import LiveDrift

    metrics.live_drift.drift = LiveDrift(np.arange(50) % 10, np.full(5, 10), n_items=10, window=20)  # a live window
    series = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def _selectors(text):
    """``(metric name, label names in its selector)`` for every recbook_* metric in a PromQL expression or series."""
    return [(m[1], set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)", m[2] or ""))) for m in re.finditer(r"\b(recbook_\w+)(\{[^}]*\})?", text)]


def test_alert_rules_use_the_services_metric_names_and_labels():
    series = _exposed_series()
    rules = [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    used = [sel for r in rules for sel in _selectors(r["expr"])]
    used += [sel for case in tests for s in case["input_series"] for sel in _selectors(s["series"])]
    assert {name for name, _ in used} == {"recbook_requests_total", "recbook_request_seconds_bucket", "recbook_request_seconds_count",
                                          "recbook_ready", "recbook_reloads_total", "recbook_live_update_due", "recbook_live_drift_psi",
                                          "recbook_rate_limit_store_errors_total"}
    for name, labels in used:
        assert name in series, f"{name} is not exposed by the service (it exposes {sorted(series)})"
        extra = labels - series[name] - {"job", "instance"}  # Prometheus adds job and instance when it scrapes
        assert not extra, f"{name}{{{', '.join(sorted(extra))}}}: labels the service does not set (it sets {sorted(series[name])})"


def test_service_metrics_pass_promtool_lint():
    """The service's own /metrics text (every metric observed once) passes ``promtool check metrics``."""
    promtool = _promtool()
    from prometheus_client import generate_latest

    metrics = _service_metrics()
    metrics.requests.labels(route="/recommend", status="200").inc()
    metrics.latency.labels(route="/recommend", status_class="2xx").observe(0.01)
    metrics.batch.observe(3)
    metrics.set_version("v1")
    metrics.ready.set(1)
    proc = subprocess.run([promtool, "check", "metrics"], input=generate_latest(metrics.registry).decode(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_service_registry_keeps_the_process_metrics():
    """A custom registry has no process_* series unless a ProcessCollector is registered in it (issue 22: dashboards
    read CPU and memory from them)."""
    from prometheus_client import generate_latest

    text = generate_latest(_service_metrics().registry).decode()
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text and "python_info" in text


def test_latency_histogram_has_a_bucket_at_the_alert_threshold():
    from prometheus_client import generate_latest

    metrics = _service_metrics()
    metrics.latency.labels(route="/recommend", status_class="2xx").observe(0.3)
    text = generate_latest(metrics.registry).decode()
    assert 'recbook_request_seconds_bucket{le="0.25",route="/recommend",status_class="2xx"}' in text  # p99 > 250 ms is decided at a bucket edge


# --- Kubernetes manifests -----------------------------------------------------------------------------------------


def _manifests():
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.relative_to(K8S).as_posix(), doc))
    return docs


def _one(kind):
    found = [doc for _, doc in _manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_every_manifest_is_valid_for_kubernetes_strictly():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = _manifests()
    kinds = sorted(doc["kind"] for _, doc in docs)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret",
                     "Service"]
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {exc.message}")


def test_the_validator_catches_a_mistake():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = _one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/readyz"  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    hpa = _one("HorizontalPodAutoscaler")
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)


def _app_module():
    """``recbook.serve.settings`` (the routes) when the serve extra imports, else None (the checks fall back to fixed paths)."""
    try:
        import recbook.serve.app  # noqa: F401 (the whole service must import)
        import recbook.serve.settings as app_module
    except ImportError:
        return None
    return app_module


def test_deployment_probes_security_and_resources():
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    app_module = _app_module()
    if app_module is not None:  # the probes hit real routes that need no API key (the kubelet sends none)
        assert {"/livez", "/readyz"} <= set(app_module.ROUTES) and {"/livez", "/readyz", "/metrics"} <= set(app_module.PUBLIC_PATHS)
    # the probes' port is the container's named port
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] in ports and container["livenessProbe"]["httpGet"]["port"] in ports
    # the container runs the service from the mounted model folder
    cmd = container["command"]
    assert cmd[:4] == ["python", "-m", "recbook", "serve"]
    # a versioned bundle folder named in the pod spec: a model rollout is a rolling update, `rollout undo` rolls back
    assert re.fullmatch(r"/models/bundles/[\w.-]+", cmd[cmd.index("--model") + 1]) and "--allow-remote" in cmd
    assert "current" not in cmd[cmd.index("--model") + 1]  # never a folder rewritten in place behind the pods' backs
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and int(cmd[cmd.index("--port") + 1]) == ports["http"]
    # resources: requests (the HPA's utilisation is relative to them) and limits
    for key in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][key])
    # non-root, no privilege escalation, read-only root filesystem with a writable /tmp
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]] and not mounts["/tmp"].get("readOnly")
    assert mounts["/models"]["readOnly"] is True
    # the API keys come from the Secret, never from a literal value
    env = {e["name"]: e for e in container["env"]}
    secret = _one("Secret")
    for name in ("RECBOOK_API_KEYS", "RECBOOK_LOG_SALT"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"] and "value" not in env[name]
    assert "optional" not in env["RECBOOK_API_KEYS"]["valueFrom"]["secretKeyRef"]  # no Secret, no pod
    # uvicorn's graceful shutdown (30 s) fits in the grace period after the preStop pause
    assert pod["terminationGracePeriodSeconds"] >= container["lifecycle"]["preStop"]["sleep"]["seconds"] + 30


def test_deployment_pins_its_image_and_spreads_its_pods():
    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert re.fullmatch(r"[\w./-]+@sha256:[0-9a-f]{64}", container["image"]), "the image is named by digest, not by a movable tag"
    keys = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    host = keys["kubernetes.io/hostname"]
    assert host["whenUnsatisfiable"] == "DoNotSchedule" and host["maxSkew"] == 1  # even over nodes: no node two pods ahead
    assert host["nodeTaintsPolicy"] == "Honor"  # tainted nodes (control plane) do not count: extra replicas can schedule
    assert "topology.kubernetes.io/zone" in keys
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(c["labelSelector"]["matchLabels"].items() <= labels.items() for c in keys.values())


def test_network_policy_admits_only_clients_and_monitoring():
    policy, deployment = _one("NetworkPolicy"), _one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}  # both directions closed by default
    (rule,) = policy["spec"]["ingress"]
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert [p["port"] for p in rule["ports"]] == ["http"] and "http" in port_names
    assert all(peer.keys() & {"podSelector", "namespaceSelector"} for peer in rule["from"])  # no ipBlock 0.0.0.0/0
    egress_ports = {p["port"] for r in policy["spec"]["egress"] for p in r["ports"]}
    assert egress_ports == {53, 6379}  # DNS and the shared rate-limit store, nothing else


def test_deployment_command_parses_with_the_cli():
    from recbook.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    if "serve" not in sub.choices:
        pytest.skip("`recbook serve` is not in the command line yet")
    container = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = parser.parse_args(container["command"][3:])
    assert args.command == "serve"


def test_secret_template_holds_no_key_and_is_not_applied_with_the_folder():
    secret = _one("Secret")
    assert all(value == "" for value in secret["stringData"].values())
    paths = [name for name, doc in _manifests() if doc["kind"] == "Secret"]
    assert all("/" in name for name in paths)  # in a subfolder: `kubectl apply -f deploy/k8s/` does not recurse


def test_service_and_hpa_point_at_the_deployment():
    deployment, service, hpa, pdb = _one("Deployment"), _one("Service"), _one("HorizontalPodAutoscaler"), _one("PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    spec = hpa["spec"]
    assert 1 <= spec["minReplicas"] <= deployment["spec"]["replicas"] <= spec["maxReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v)
    assert claim == _one("PersistentVolumeClaim")["metadata"]["name"]
