"""Model server throughput: images/s over gRPC with 8 concurrent clients, batching on and off,
side by side with the model called in-process at the batch size limit.

Each client sends requests of 8 faces (real FER-2013 validation faces), so with batching on the
server can merge 8 concurrent requests into one model call of 64 (models/batching.config's limit);
in-process calls the same SavedModel with batches of 64 directly; with batching off each request is
its own model call of 8.

Then every committed version side by side (the oldest and the newest, say version 1 and version 2):
one server holding both (a ``specific`` version policy), the same clients naming the version in
their requests, in alternating rounds, the median of each. A newer version must keep at least 75%
of the oldest's images/s.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from bench.sizes import size
from emotune_common.settings import default_data_dir
from tests.processes import committed_versions, latest_model_dir, start_model_server

CLIENTS = 8
PER_REQUEST = 8
SECONDS = size("BENCH_MODELSERVER_SECONDS", 15.0, 1.0)
ROUNDS = size("BENCH_MODELSERVER_ROUNDS", 3, 1)
SERVE_VERSIONS = """model_config_list {{
  config {{
    name: "emotion_cnn"
    base_path: "/models/emotion_cnn"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ {versions} }} }}
  }}
}}
"""


def _faces(n: int) -> np.ndarray:
    data_dir = default_data_dir()
    with np.load(data_dir / "fer2013" / "val.npz") as f:
        return (f["x"][:n].astype(np.float32) / 255.0)[..., None]


def _in_process(images: np.ndarray, batch: int) -> float:
    import tensorflow as tf

    serve = tf.saved_model.load(str(latest_model_dir())).signatures["serving_default"]
    x = tf.constant(images[:batch])
    serve(images=x)  # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        serve(images=x)
        done += batch
    return done / (time.perf_counter() - started)


def _over_grpc(images: np.ndarray, port: int, version: int | None = None,
               seconds: float = SECONDS) -> tuple[float, float]:  # fmt: skip
    """(images/s, p99 request latency in ms) for CLIENTS threads sending PER_REQUEST faces each, to
    ``version`` (default: the one the server serves)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    requests = []
    for i in range(CLIENTS):
        r = predict_pb2.PredictRequest()
        r.model_spec.name = "emotion_cnn"
        if version is not None:
            r.model_spec.version.value = version
        r.inputs["images"].CopyFrom(tf.make_tensor_proto(images[i * PER_REQUEST : (i + 1) * PER_REQUEST]))
        requests.append(r)
    latencies: list[float] = []
    counts = [0] * CLIENTS
    stop = threading.Event()
    warmed = threading.Barrier(CLIENTS + 1, timeout=120)  # the clients' warm-up calls, and this thread

    def client(i: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                stub.Predict(requests[i], timeout=60)  # warm up
            except grpc.RpcError:
                warmed.abort()  # the measurement fails at once, not after the barrier's timeout
                raise
            warmed.wait()
            while not stop.is_set():
                t = time.perf_counter()
                stub.Predict(requests[i], timeout=60)
                latencies.append(time.perf_counter() - t)
                counts[i] += PER_REQUEST

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    warmed.wait()  # every client warmed up, none counted yet
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - started
    for t in threads:
        t.join()
    return sum(counts) / elapsed, float(np.percentile(latencies, 99) * 1000)


def run(redis_url: str) -> dict:
    images = _faces(CLIENTS * PER_REQUEST)
    result: dict = {"clients": CLIENTS, "faces_per_request": PER_REQUEST, "seconds": SECONDS}
    result["in_process_batch64_img_s"] = round(_in_process(images, 64))
    for batching in (True, False):
        key = "batching_on" if batching else "batching_off"
        with tempfile.TemporaryDirectory(prefix="emotune-bench-") as workdir:
            server = start_model_server(Path(workdir), poll_seconds=1.0, env={
                "EMOTUNE_ENABLE_BATCHING": str(batching).lower(), "EMOTUNE_LOG_LEVEL": "WARNING",
            })  # fmt: skip
            try:
                rate, p99 = _over_grpc(images, server.port)
            finally:
                server.stop()
        result[f"grpc_{key}_img_s"] = round(rate)
        result[f"grpc_{key}_p99_ms"] = round(p99, 1)
    result["in_process_batch8_img_s"] = round(_in_process(images, PER_REQUEST))
    result["ratio_batching_on"] = round(result["grpc_batching_on_img_s"] / result["in_process_batch64_img_s"], 3)
    result["ratio_batching_off"] = round(result["grpc_batching_off_img_s"] / result["in_process_batch64_img_s"], 3)
    result["versions"] = _versions_side_by_side(images)
    return result


def _versions_side_by_side(images: np.ndarray) -> dict:
    """Images/s (batching on) of each committed version from one server, in alternating rounds."""
    versions = committed_versions()
    rates: dict[int, list[float]] = {v: [] for v in versions}
    config = SERVE_VERSIONS.format(versions=" ".join(f"versions: {v}" for v in versions))
    with tempfile.TemporaryDirectory(prefix="emotune-bench-") as workdir:
        server = start_model_server(Path(workdir), poll_seconds=1.0, versions=tuple(versions), committed=True,
                                    config=config, env={"EMOTUNE_LOG_LEVEL": "WARNING"})  # fmt: skip
        try:
            for _ in range(ROUNDS):
                for version in versions:
                    rates[version].append(_over_grpc(images, server.port, version, SECONDS / 2)[0])
        finally:
            server.stop()
    median = {v: float(np.median(r)) for v, r in rates.items()}
    oldest = versions[0]
    return {"rounds": ROUNDS, "seconds_a_round": SECONDS / 2,
            "img_s": {str(v): round(m) for v, m in median.items()},
            "vs_oldest": {str(v): round(m / median[oldest], 3) for v, m in median.items()}}  # fmt: skip


def markdown(r: dict) -> str:
    return "\n".join(
        [
            "## Model server: images per second over gRPC",
            "",
            f"{r['clients']} concurrent clients, {r['faces_per_request']} faces a request, {r['seconds']:.0f} s a "
            "measurement, the latest committed version of the emotion CNN.",
            "",
            "| path | images/s | vs in-process at 64 | p99 request latency |",
            "| --- | ---: | ---: | ---: |",
            f"| in-process, batches of 64 (the limit) | {r['in_process_batch64_img_s']:,} | 100% | |",
            f"| gRPC, server-side batching on | {r['grpc_batching_on_img_s']:,} | {r['ratio_batching_on']:.0%} | "
            f"{r['grpc_batching_on_p99_ms']} ms |",
            f"| gRPC, batching off | {r['grpc_batching_off_img_s']:,} | {r['ratio_batching_off']:.0%} | "
            f"{r['grpc_batching_off_p99_ms']} ms |",
            f"| in-process, batches of 8 | {r['in_process_batch8_img_s']:,} | | |",
            "",
            "Floor: gRPC with batching at least 70% of in-process throughput.",
            "",
            "### Versions side by side",
            "",
            f"One server holding every committed version, the same {r['clients']} clients naming the version, "
            f"batching on, {r['versions']['rounds']} alternating rounds of {r['versions']['seconds_a_round']:.1f} s, "
            "the median of each:",
            "",
            "| version | images/s | vs the oldest |",
            "| --- | ---: | ---: |",
            *(
                f"| {v} | {rate:,} | {r['versions']['vs_oldest'][v]:.0%} |"
                for v, rate in r["versions"]["img_s"].items()
            ),
            "",
            "Floor: a newer version keeps at least 75% of the oldest's images/s.",
        ]
    )
