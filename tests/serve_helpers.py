"""What the serving tests share: tiny bundles (built once per session), the keys and settings of an in-process
service, and a real uvicorn server on a loopback port that is always stopped."""

import contextlib
import shutil
import socket
import threading
import time

import httpx

USER_OFFSET = 731_000_000  # user ids no other number in a log line looks like (the masking test greps for them)
BUNDLE_CACHE: dict = {}


def tiny_retriever(n_items: int, seed: int):
    import torch

    from recbook.models.sequential import SequentialConfig, SequentialRecommender

    torch.manual_seed(seed)
    return SequentialRecommender(n_items, SequentialConfig(max_len=16, dim=16, layers=1, heads=2, dropout=0.0)).eval()


def tiny_data():
    from recbook.data import leave_last_out, make_synthetic
    from recbook.evaluation.protocol import history_for_test

    ds = make_synthetic(seed=0, n_users=30, n_items=40)
    history = history_for_test(leave_last_out(ds.interactions, drop_short_users=True))
    history = history.assign(user_id=history["user_id"] + USER_OFFSET)
    return ds, history


def serve_bundles(root, tiny_backbone) -> dict:
    """``{"v1", "v2", "plain"}``: two versions with an int8 ONNX re-ranker (v2's parent is v1), one without re-ranker.
    Built once per test session (seconds), under ``root``."""
    if "v1" in BUNDLE_CACHE:
        return BUNDLE_CACHE
    from helpers import tiny_cross_encoder_from
    from recbook.models.backbone import load_tokenizer
    from recbook.serve.export import write_bundle

    ds, history = tiny_data()
    tokenizer = load_tokenizer(tiny_backbone)
    config = {"max_length": 48, "max_history_items": 4, "max_history_tokens": 24}
    reranker = tiny_cross_encoder_from(tiny_backbone)
    BUNDLE_CACHE["v1"] = write_bundle(root / "v1", tiny_retriever(ds.n_items, 0), ds, history, reranker, tokenizer, config, version="v1")
    BUNDLE_CACHE["v2"] = write_bundle(root / "v2", tiny_retriever(ds.n_items, 1), ds, history, reranker, tokenizer, config, version="v2",
                                      parent="v1")
    BUNDLE_CACHE["plain"] = write_bundle(root / "plain", tiny_retriever(ds.n_items, 0), ds, history, version="plain")
    return BUNDLE_CACHE




def copy_of(bundle, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(bundle, target)
    return target



API_KEY = "client-key-0123456789abcdef"
OTHER_KEY = "second-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
HEADERS = {"X-API-Key": API_KEY}



def settings(**overrides):
    from recbook.serve.app import ServeSettings

    # torch_threads=None: an in-process server must not change the test process's torch threads
    values = dict(api_keys=(API_KEY, OTHER_KEY), admin_keys=(ADMIN_KEY,), log_salt="test-salt", ort_threads=1, torch_threads=None)
    values.update(overrides)
    return ServeSettings(**values)


@contextlib.contextmanager
def running(app, wait_ready: bool = True, holder: dict | None = None):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield an httpx client; always shut down.
    ``holder["server"]`` gets the uvicorn server (to stop it from a test)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    if holder is not None:
        holder["server"], holder["thread"] = server, thread
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20)
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        while wait_ready and client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"
